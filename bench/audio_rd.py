"""Audio rate–distortion on held-out real recordings: an aec audio model at each of its rate
points against Opus (libsndfile's, through soundfile) at 6–64 kbit/s targets, and in lossless mode
against FLAC.

    python -m bench.audio_rd --model aecore/zoo/weights/audio-hyperprior-small.safetensors [--limit 20]

Clips come from ``recipes.audio_data``'s held-out split (speech: klettres-data voices; music:
game soundtracks), never trained on; each is cut to its first ``--seconds`` s. Figures per set and
codec point: kbit/s (payload or file bytes), SNR and log-spectral distance (dB, 512-point frames)
at 16 kHz, as a job report measures them, and, where the packages are installed (``pip install
pesq pystoi``; not part of the set-up: pesq builds from source), wideband PESQ (ITU-T P.862.2,
MOS-LQO 1-4.6) and STOI (0-1; both speech measures, reported for music too). Lossless: the same
clips as 16-bit WAV through aec's lossless mode (every payload decoded back to the file) against
FLAC, with the share of pieces whose latents paid for themselves. Seams: whole held-out music
pieces (60 s, longer than the model's 30 s chunks), the error-to-signal ratio within 20 ms of a
chunk boundary against the same within 20 ms of each chunk's middle. Writes docs/bench/audio_rd.json.
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


def _perceptual(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Wideband PESQ and STOI of ``y`` against ``x`` (mono, 16 kHz), where installed and defined."""
    out: dict[str, float] = {}
    x, y = x.astype(np.float64).ravel(), y.astype(np.float64).ravel()[: x.size]
    try:
        from pesq import pesq

        out["pesq"] = float(pesq(16000, x, y, "wb"))
    except Exception:  # noqa: BLE001 - not installed, or pesq's own errors for clips with no utterance
        pass
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(x, y, 16000, extended=False))
    except ImportError:
        pass
    return out


def _quality(comp, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {**comp.modality.quality(x, y), **_perceptual(x, y)}


def lossless(bundle: bytes, clips: list[bytes]) -> dict[str, float]:
    """Bits per sample of aec's lossless mode and of FLAC on the clips (16-bit WAV)."""
    from aecore import load_bundle
    from bench.lossless import aec_lossless, classic_lossless

    comp = load_bundle(bundle, lossless=True)
    aec = aec_lossless(comp, clips)  # every payload decoded back to its file
    samples = [comp.load(d) for d in clips]
    values = sum(int(np.prod(s.info.shape)) for s in samples)
    sizes = {"aec lossless": aec["bytes"], "wav (the files)": sum(len(d) for d in clips),
             **classic_lossless(comp, samples)}
    return {**{k: round(8 * v / values, 3) for k, v in sizes.items()}, "model_used_share": round(aec["model_used_share"], 3)}


def seams(bundle: bytes, folder: Path, limit: int, window: int = 320) -> dict[str, float]:
    """Pieces longer than one chunk (``model.chunk`` samples, coded as separate pieces): the
    error-to-signal ratio within ``window`` samples (20 ms) of the chunk boundaries against the
    same around each chunk's middle, in dB (equal: the boundary is no worse than anywhere else)."""
    from aecore import load_bundle

    joint = load_bundle(bundle)
    separate = load_bundle(bundle)
    separate._joint = lambda sample: False  # what versions 2-3 did: every piece coded on its own
    chunk = joint.model.chunk
    ratios = []
    for p in sorted(folder.glob("*.wav")):
        if len(ratios) >= limit:
            break
        x, rate = sf.read(p, dtype="float32")
        if rate != 16000 or len(x) <= chunk + window:
            continue
        row = []
        for comp in (joint, separate):
            sample = comp.load(p.read_bytes())
            restored, _, _ = comp.decode(comp.encode([sample], [False])[0].payload)
            y, _ = sf.read(io.BytesIO(restored), dtype="float32")
            err = (y[: len(x)] - x) ** 2

            def around(points: range, err: np.ndarray = err, x: np.ndarray = x) -> float:
                """The error-to-signal ratio within ``window`` of the points."""
                e = np.concatenate([err[b - window : b + window] for b in points])
                v = np.concatenate([x[b - window : b + window] ** 2 for b in points])
                return 10 * np.log10(e.mean() / max(v.mean(), 1e-12))

            row += [around(range(chunk, len(x) - window, chunk)), around(range(chunk // 2, len(x) - window, chunk))]
        ratios.append(row)
    if not ratios:
        return {"pieces": 0}
    r = [round(float(v), 2) for v in np.array(ratios, dtype=np.float64).mean(axis=0)]
    return {"pieces": len(ratios), "chunk_s": chunk / 16000,
            "joint (this aec): error-to-signal dB at chunk boundaries / mid-chunk": r[:2],
            "pieces coded apart (payload v3): at boundaries / mid-chunk": r[2:]}


def measure(bundle: bytes, clips: list[bytes]) -> dict[str, dict[str, float]]:
    from aecore import load_bundle

    base = load_bundle(bundle)
    points: dict[str, list[dict[str, float]]] = {}
    timing = {"encode_s": 0.0, "decode_s": 0.0, "audio_s": 0.0}
    for q in range(1, len(base.model.lambdas) + 1):
        comp = load_bundle(bundle, rate_point=float(q))
        for data in clips:
            sample = comp.load(data)
            seconds = sample.info.shape[0] / sample.info.rate
            t0 = time.perf_counter()
            enc = comp.encode([sample], [False])[0]
            t1 = time.perf_counter()
            restored, x_hat, _ = comp.decode(enc.payload, list(sample.shape))
            t2 = time.perf_counter()
            qual = _quality(comp, sample.x, comp.load(restored).x)
            points.setdefault(f"aec q{q}", []).append(
                {"kbps": len(enc.payload) * 8 / seconds / 1000, **qual})
            timing["encode_s"] += t1 - t0
            timing["decode_s"] += t2 - t1
            timing["audio_s"] += seconds
            if q == 1:
                for name, blob, dec in comp.modality.classic_codecs(sample):
                    points.setdefault(name, []).append(
                        {"kbps": len(blob) * 8 / seconds / 1000, **_quality(comp, sample.x, dec)})
    out = {k: {m: round(float(np.mean([p[m] for p in v if m in p])), 3) for m in ("kbps", "snr", "lsd", "pesq", "stoi")
               if any(m in p for p in v)} for k, v in points.items()}
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
        result["sets"][kind] = {"clips": len(clips), **measure(bundle, clips), "lossless (bits/sample)": lossless(bundle, clips)}
        print(kind, json.dumps(result["sets"][kind], indent=1), flush=True)
    result["chunk seams (music, whole pieces)"] = seams(bundle, args.data / "music", min(args.limit, 8))
    print("seams", result["chunk seams (music, whole pieces)"], flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
