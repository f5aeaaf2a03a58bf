"""Lossy photos and sounds, each by the smallest codec at the model's quality: what aec's lossy
job stores (``aecore.archive.lossy``) against the model alone and against each classic codec alone.

    python -m bench.lossy [--data build/zoo-data/images/heldout] [--limit 24] [--rate-points 1,3,5]
    python -m bench.lossy --modality audio [--data build/zoo-data/audio/heldout] [--limit 24] [--rate-points 1,2,3]

Held-out files of the zoo's own split (never trained on). Photos: 256-px central crops and full
size (at most 1024 px a side), against WebP, AVIF and JPEG XL by PSNR. Sounds: speech clips and
music pieces cut to ``--seconds``, 16-bit WAV, against Opus by SNR at the model's rate. For each
file and rate point of the zoo model: its payload and quality, then each classic codec at its
smallest setting that reaches the model's quality (effort ``default``), and the winner. Prints byte
totals, the share of files each codec won, search seconds per file; writes
``docs/bench/lossy.json`` (``lossy-audio.json``).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PIL import Image

from aecore import load_bundle
from aecore.archive import is_learned, learned_codec_id
from aecore.archive.lossy import best_lossy, lossy_candidates
from aecore.zoo import zoo_bundle
from bench.common import machine, save
from bench.image_rd import crops

ZOO = {"image": "image-small", "audio": "audio-small"}


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    return buf.getvalue()


def _wav(path: Path, seconds: float) -> bytes:
    x, rate = sf.read(path, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, x[: int(seconds * rate)], rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def evaluate(files: list[bytes], modality: str, rate_point: float, effort: str) -> dict[str, Any]:
    compressor = load_bundle(zoo_bundle(ZOO[modality]), lossless=False, rate_point=rate_point)
    metric = compressor.modality.gate_metric[0]
    codecs = [c.codec_id for c in lossy_candidates(modality, effort)]
    learned = learned_codec_id(modality)
    totals: dict[str, int] = {"model alone": 0, "aec (best per file)": 0}
    won: dict[str, int] = {}
    count, seconds, model_quality, unit = 0.0, 0.0, [], ""
    for data in files:
        sample = compressor.modality.load(data)
        [enc] = compressor.encode([sample], [True])
        target = enc.quality[metric]
        started = time.perf_counter()
        choice, sizes = best_lossy(sample.x, sample.info, target, len(enc.payload), effort, modality)
        seconds += time.perf_counter() - started
        for codec in codecs:  # a codec that never reaches the target at its best setting: the model's bytes stand in
            totals[f"{codec} alone"] = totals.get(f"{codec} alone", 0) + sizes.get(codec, len(enc.payload))
        totals["model alone"] += len(enc.payload)
        winner = choice.codec if choice else learned
        totals["aec (best per file)"] += len(choice.payload) if choice else len(enc.payload)
        won[winner] = won.get(winner, 0) + 1
        unit, n = sample.info.rate_unit()
        count += n
        model_quality.append(target)
    best_classic = min(v for k, v in totals.items() if k.endswith(" alone") and k != "model alone")
    plain = [f"{c} alone" for c in codecs if not is_learned(c)]  # the classic codecs without a learned stage
    best_plain = min(totals[k] for k in plain)
    return {"rate_point": rate_point, "files": len(files), "metric": metric, "model_quality": float(np.mean(model_quality)),
            "unit": unit, "bytes": totals, "rate": {k: 8.0 * v / count for k, v in totals.items()}, "won": won,
            "learned_share": won.get(learned, 0) / len(files),
            # files won by a classic codec with a learned stage (a post-filter), and by any learned part
            "learned_stage_share": sum(n for c, n in won.items() if c != learned and is_learned(c)) / len(files),
            "learned_any_share": sum(n for c, n in won.items() if is_learned(c)) / len(files),
            "aec_vs_best_plain_classic": totals["aec (best per file)"] / best_plain - 1,
            "aec_vs_model": totals["aec (best per file)"] / totals["model alone"] - 1,
            "aec_vs_best_single_classic": totals["aec (best per file)"] / best_classic - 1,
            "search_seconds_per_file": seconds / len(files), "effort": effort}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", choices=sorted(ZOO), default="image")
    parser.add_argument("--data", type=Path, help="default: build/zoo-data/<images|audio>/heldout")
    parser.add_argument("--limit", type=int, default=24, help="photos, or clips of each audio set")
    parser.add_argument("--full", type=int, default=8, help="full-size photos (the first N of the crops' photos)")
    parser.add_argument("--seconds", type=float, default=4.0, help="audio: each clip cut to this long")
    parser.add_argument("--rate-points", help="default: 1,3,5 (image), 1,2,3 (audio)")
    parser.add_argument("--effort", default="default")
    parser.add_argument("--save-as", help="the result's name under docs/bench/ (default: lossy, lossy-audio)")
    args = parser.parse_args()
    audio = args.modality == "audio"
    data = args.data or Path("build/zoo-data/audio/heldout" if audio else "build/zoo-data/images/heldout")
    if audio:
        sets = {kind: [_wav(p, args.seconds) for p in sorted((data / kind).glob("*.wav"))[: args.limit]]
                for kind in ("speech", "music")}
    else:
        images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(data.glob("*.png"))[: args.limit]]
        sets = {"256-px crops": [_png(a) for a in crops(images)], "full size": [_png(a) for a in images[: args.full]]}
    if not any(sets.values()):
        sys.exit(f"no held-out files under {data}; run `make zoo-data` first")
    result: dict[str, Any] = {"machine": machine(), "command": "python -m bench.lossy " + " ".join(sys.argv[1:]),
                              "data": str(data), "modality": args.modality, "sets": {}}
    for name, files in sets.items():
        for q in (float(r) for r in (args.rate_points or ("1,2,3" if audio else "1,3,5")).split(",")):
            r = evaluate(files, args.modality, q, args.effort)
            result["sets"].setdefault(name, []).append(r)
            print(f"{name} q{q:g}: {r['files']} files, model {r['metric']} {r['model_quality']:.2f} dB; "
                  + ", ".join(f"{k} {v:,} B ({r['rate'][k]:.3f} {r['unit']})" for k, v in r["bytes"].items())
                  + f"; won {r['won']}; aec vs model {100 * r['aec_vs_model']:+.1f} %, vs best single classic "
                  f"{100 * r['aec_vs_best_single_classic']:+.1f} % (without a learned stage: "
                  f"{100 * r['aec_vs_best_plain_classic']:+.1f} %); learned parts won {100 * r['learned_any_share']:.0f} %; "
                  f"search {r['search_seconds_per_file']:.2f} s/file",
                  flush=True)
    print(save(args.save_as or ("lossy-audio" if audio else "lossy"), result), file=sys.stderr)


if __name__ == "__main__":
    main()
