"""Classic lossy image codecs with and without their learned post-filter (``aecore.archive.postfilter``),
on held-out photos nobody trained on.

Two sets: ``split`` (the held-out 15 % of the zoo's photo sources, ``recipes.image_data``) and
``independent`` (photos of mate-backgrounds and plasma-workspace-wallpapers, packages kept for
evaluation only), each at full size (at most 1024 px a side) and as central 256-px crops.

For every image, codec (WebP, JPEG XL, AVIF as aec codes them at ``--effort``) and setting:
the stored payload's bits per pixel (``0xAC | id``, the image header, the bitstream; the
post-filtered payload's 3 more bytes counted), PSNR (RGB, 8 bits) and MS-SSIM of the plain
decode and of the post-filtered one. Curves average bpp and quality per setting; BD-rate
(``bench.image_rd.bd_rate``, PSNR and MS-SSIM) of each codec + filter against the codec alone,
and of the best filtered codec against the best classic one, over 0.1-1.0 bpp of the anchor.
Decode speed with and without the filter (2 threads, full-size images).

    python -m bench.postfilter --limit 50 --full 20      # ~25 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from aecore.archive.codec import get_file_codec
from aecore.archive.postfilter import PostFilteredCodec, apply_postfilter, load_postfilter, postfilter_metadata
from aecore.modalities.image import ImageInfo
from bench.common import BENCH_DIR, machine
from bench.image_rd import _mean_curve, _measure, bd_rate, crops, independent_images

__all__ = ["main"]

CODECS = ("webp", "jxl", "avif")
POINTS = 10  # settings per codec, spread over the lower 90 % of its settings


def evaluate(images: list[np.ndarray], label: str, effort: str) -> dict[str, Any]:
    points: dict[str, dict[int, list[dict[str, float]]]] = {}
    timing: dict[str, float] = {}
    pixels = sum(a.shape[0] * a.shape[1] for a in images)
    for cid in CODECS:
        pf = get_file_codec(f"{cid}-pf")
        assert isinstance(pf, PostFilteredCodec)
        base = pf.base()
        net, tag = load_postfilter(pf.weights_path())
        n = len(pf.settings)
        indices = sorted({round(i) for i in np.linspace(0, 0.9 * (n - 1), POINTS)})
        plain = points.setdefault(cid, {i: [] for i in indices})
        filtered = points.setdefault(f"{cid}+pf", {i: [] for i in indices})
        t_dec = t_pf = 0.0
        for a in images:
            header = ImageInfo(shape=(a.shape[0], a.shape[1], 3), bits=8).pack()
            for i in indices:
                stream = base.compress_pixels(a, pf.settings[i], effort)
                t0 = time.perf_counter()
                dec = base.decompress_pixels(stream)
                t1 = time.perf_counter()
                out = apply_postfilter(net, dec, pf.condition(i))
                t2 = time.perf_counter()
                t_dec, t_pf = t_dec + t1 - t0, t_pf + t2 - t1
                plain[i].append(_measure(a, dec, len(base.payload(stream, header))))
                filtered[i].append(_measure(a, out, len(pf.payload(tag + bytes([i]) + stream, header))))
        mp = pixels * len(indices) / 1e6
        timing[cid] = {"decode_mp_per_s": round(mp / t_dec, 2), "decode_with_filter_mp_per_s": round(mp / (t_dec + t_pf), 2),
                       "filter_alone_mp_per_s": round(mp / t_pf, 2)}
    curves = {k: _mean_curve(v) for k, v in points.items()}
    result: dict[str, Any] = {"images": len(images), "megapixels": round(pixels / 1e6, 3), "curves": curves,
                              "decode_speed_2_threads": timing}
    for metric in ("psnr", "ms_ssim"):
        gains = {cid: bd_rate(curves[cid], curves[f"{cid}+pf"], 0.1, 1.0, metric) for cid in CODECS}
        # the best classic codec: the one the others are measured against (lowest BD-rate vs WebP)
        vs_webp = {k: (bd_rate(curves["webp"], c, 0.1, 1.0, metric) if k != "webp" else 0.0) for k, c in curves.items()}
        best_plain = min(CODECS, key=lambda k: vs_webp[k] if vs_webp[k] is not None else np.inf)
        best_pf = min((f"{c}+pf" for c in CODECS), key=lambda k: vs_webp[k] if vs_webp[k] is not None else np.inf)
        result[f"bd_rate_{metric}_percent"] = {
            **{f"{cid}+pf vs {cid}": g for cid, g in gains.items()},
            **{f"{k} vs webp": v for k, v in vs_webp.items() if k != "webp"},
            f"best filtered ({best_pf}) vs best classic ({best_plain})": bd_rate(curves[best_plain], curves[best_pf],
                                                                                   0.1, 1.0, metric)}
    print(label, json.dumps({k: v for k, v in result.items() if k != "curves"}), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images/heldout"))
    parser.add_argument("--cache", type=Path, default=Path("build/debs"))
    parser.add_argument("--limit", type=int, default=50, help="images per set (their 256-px crops)")
    parser.add_argument("--full", type=int, default=20, help="of which at full size (the first N)")
    parser.add_argument("--sets", default="split,independent")
    parser.add_argument("--sizes", default="256,full")
    parser.add_argument("--effort", default="default", help="the codecs' effort (default: AVIF speed 8, JPEG XL 7, "
                        "WebP method 4; max: AVIF speed 4, JPEG XL 9, WebP 6)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "postfilter.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    sets: dict[str, list[np.ndarray]] = {}
    if "split" in args.sets:
        sets["split"] = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.data.glob("*.png"))[: args.limit]]
    if "independent" in args.sets:
        sets["independent"] = independent_images(args.cache, args.limit)
    weights = {cid: postfilter_metadata(get_file_codec(f"{cid}-pf").weights_path()) for cid in CODECS}
    results: dict[str, Any] = {"machine": machine(), "command": "python -m bench.postfilter " + " ".join(sys.argv[1:]),
                               "filters": weights}
    for name, images in sets.items():
        if "256" in args.sizes:
            results[f"{name}-256"] = evaluate(crops(images), f"{name}-256", args.effort)
        if "full" in args.sizes:
            results[f"{name}-full"] = evaluate(images[: args.full], f"{name}-full", args.effort)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
