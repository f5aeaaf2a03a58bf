"""Audio rate–distortion on held-out real recordings: an aec audio model at each of its rate
points against Opus (libsndfile's, through soundfile) at its compression levels.

    python -m bench.audio_rd --model build/zoo-train/audio-small/model.safetensors [--limit 20]

Clips come from ``recipes.audio_data``'s held-out split (speech: klettres-data voices; music:
game soundtracks), never trained on; each is cut to its first ``--seconds`` s. Figures per set and
codec point: kbit/s (payload bytes), SNR and log-spectral distance (dB, 512-point frames) at
16 kHz, as a job report measures them. Writes docs/bench/audio_rd.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).parents[1]


def _clips(folder: Path, limit: int, seconds: float) -> list[bytes]:
    out = []
    for p in sorted(folder.glob("*.wav"))[:limit]:
        x, rate = sf.read(p, dtype="float32")
        buf = io.BytesIO()
        sf.write(buf, x[: int(seconds * rate)], rate, format="WAV", subtype="PCM_16")
        out.append(buf.getvalue())
    return out


def measure(bundle: bytes, clips: list[bytes]) -> dict[str, dict[str, float]]:
    from aecore import load_bundle

    base = load_bundle(bundle)
    points: dict[str, list[dict[str, float]]] = {}
    timing = {"encode_s": 0.0, "decode_s": 0.0, "audio_s": 0.0}
    for q in range(1, len(base.model.lambdas) + 1):
        comp = load_bundle(bundle, rate_point=float(q))
        for data in clips:
            sample = comp.load(data)
            seconds = sample.info["shape"][0] / sample.info["rate"]
            t0 = time.perf_counter()
            enc = comp.encode([sample], [False])[0]
            t1 = time.perf_counter()
            restored, x_hat, _ = comp.decode(enc.payload, list(sample.shape))
            t2 = time.perf_counter()
            qual = comp.modality.quality(sample.x, comp.load(restored).x)
            points.setdefault(f"aec q{q}", []).append(
                {"kbps": len(enc.payload) * 8 / seconds / 1000, **qual})
            timing["encode_s"] += t1 - t0
            timing["decode_s"] += t2 - t1
            timing["audio_s"] += seconds
            if q == 1:
                for name, blob, dec in comp.modality.classic_codecs(sample):
                    points.setdefault(name, []).append(
                        {"kbps": len(blob) * 8 / seconds / 1000, **comp.modality.quality(sample.x, dec)})
    out = {k: {m: round(float(np.mean([p[m] for p in v])), 3) for m in ("kbps", "snr", "lsd")} for k, v in points.items()}
    out["speed (x real time, 1 process)"] = {
        "encode": round(timing["audio_s"] / timing["encode_s"], 2), "decode": round(timing["audio_s"] / timing["decode_s"], 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True, help="a bundle (model.safetensors)")
    ap.add_argument("--data", type=Path, default=ROOT / "build" / "zoo-data" / "audio" / "heldout")
    ap.add_argument("--limit", type=int, default=20, help="clips per set")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "bench" / "audio_rd.json")
    args = ap.parse_args()
    bundle = args.model.read_bytes()
    result = {"command": " ".join(["python -m bench.audio_rd", *sys.argv[1:]]),
              "machine": f"{os.cpu_count()} CPUs, no GPU", "model": str(args.model), "sets": {}}
    for kind in sorted(p.name for p in args.data.iterdir() if p.is_dir()):
        clips = _clips(args.data / kind, args.limit, args.seconds)
        result["sets"][kind] = {"clips": len(clips), **measure(bundle, clips)}
        print(kind, json.dumps(result["sets"][kind], indent=1), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
