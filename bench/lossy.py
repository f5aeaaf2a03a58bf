"""Lossy photos, each by the smallest codec at the model's quality: what aec's lossy job stores
(``aecore.archive.lossy``) against the model alone and against each classic codec alone.

    python -m bench.lossy [--data build/zoo-data/images/heldout] [--limit 24] [--rate-points 1,3,5]

Held-out photos of the zoo's own split (never trained on), as 256-px central crops and at full
size (at most 1024 px a side). For each photo and rate point of ``zoo:image-small``: the model's
payload and PSNR, then WebP, AVIF and JPEG XL each at their smallest setting whose PSNR reaches
the model's (effort ``default``), and the winner. Prints bytes totals, the share of photos each
codec won, encode seconds per photo; writes ``docs/bench/lossy.json``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aecore import load_bundle
from aecore.archive.lossy import best_lossy
from aecore.zoo import zoo_bundle
from bench.common import machine, save
from bench.image_rd import crops


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def evaluate(images: list[np.ndarray], rate_point: float, effort: str) -> dict[str, Any]:
    compressor = load_bundle(zoo_bundle("image-small"), lossless=False, rate_point=rate_point)
    totals: dict[str, int] = {"model alone": 0, "aec (best per photo)": 0}
    won: dict[str, int] = {}
    pixels, seconds, psnr_model = 0, 0.0, []
    for a in images:
        sample = compressor.modality.load(_png(a))
        [enc] = compressor.encode([sample], [True])
        target = enc.quality["psnr"]
        started = time.perf_counter()
        choice, sizes = best_lossy(sample.x, sample.info.pack(), 8, target, len(enc.payload), effort)
        seconds += time.perf_counter() - started
        for codec, n in sizes.items():
            totals[f"{codec} alone"] = totals.get(f"{codec} alone", 0) + n
        if len(sizes) < 3:  # a codec that never reaches the target at its best setting: the model's bytes stand in
            for codec in {"webp", "avif", "jxl"} - set(sizes):
                totals[f"{codec} alone"] = totals.get(f"{codec} alone", 0) + len(enc.payload)
        totals["model alone"] += len(enc.payload)
        winner = choice.codec if choice else "aec-image"
        totals["aec (best per photo)"] += len(choice.payload) if choice else len(enc.payload)
        won[winner] = won.get(winner, 0) + 1
        pixels += a.shape[0] * a.shape[1]
        psnr_model.append(target)
    best_classic = min(v for k, v in totals.items() if k.endswith(" alone") and k != "model alone")
    return {"rate_point": rate_point, "photos": len(images), "model_psnr": float(np.mean(psnr_model)),
            "bytes": totals, "bpp": {k: 8.0 * v / pixels for k, v in totals.items()}, "won": won,
            "learned_share": won.get("aec-image", 0) / len(images),
            "aec_vs_model": totals["aec (best per photo)"] / totals["model alone"] - 1,
            "aec_vs_best_single_classic": totals["aec (best per photo)"] / best_classic - 1,
            "search_seconds_per_photo": seconds / len(images), "effort": effort}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images/heldout"))
    parser.add_argument("--limit", type=int, default=24)
    parser.add_argument("--full", type=int, default=8, help="full-size photos (the first N of the crops' photos)")
    parser.add_argument("--rate-points", default="1,3,5")
    parser.add_argument("--effort", default="default")
    args = parser.parse_args()
    paths = sorted(args.data.glob("*.png"))[: args.limit]
    if not paths:
        sys.exit(f"no photos under {args.data}; run `make zoo-data` first")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    sets = {"256-px crops": crops(images), "full size": images[: args.full]}
    result: dict[str, Any] = {"machine": machine(), "command": "python -m bench.lossy " + " ".join(sys.argv[1:]),
                              "data": str(args.data), "sets": {}}
    for name, imgs in sets.items():
        for q in (float(r) for r in args.rate_points.split(",")):
            r = evaluate(imgs, q, args.effort)
            result["sets"].setdefault(name, []).append(r)
            b = r["bytes"]
            print(f"{name} q{q:g}: {r['photos']} photos, model PSNR {r['model_psnr']:.2f} dB; "
                  + ", ".join(f"{k} {v:,} B ({r['bpp'][k]:.3f} bpp)" for k, v in b.items())
                  + f"; won {r['won']}; aec vs model {100 * r['aec_vs_model']:+.1f} %, vs best single classic "
                  f"{100 * r['aec_vs_best_single_classic']:+.1f} %; search {r['search_seconds_per_photo']:.2f} s/photo",
                  flush=True)
    print(save("lossy", result), file=sys.stderr)


if __name__ == "__main__":
    main()
