"""Lossless mode against the lossless codecs a user would archive with, on held-out halves.

Per modality a tiny model is trained on one half of a real collection (as ``rd_classic``) and
the other half is compressed losslessly; every payload is decoded and must give back the file
byte for byte. Sizes are totals over the held-out half:

- image: PNG photo crops (Pillow-written, 64-128 px): aec vs the files themselves, PNG with
  ``optimize``, WebP lossless (method 6); bits per pixel;
- audio: 16-bit PCM WAV clips (8-48 kHz, mono and stereo): aec vs the WAV files and FLAC
  (libsndfile) at compression levels 0.5 and 1.0; bits per sample.

    python -m bench.lossless                    # ~4 min on 2 cores
    python -m bench.lossless --modality audio --steps 600
"""

from __future__ import annotations

import io
import time

import numpy as np

from aecore import Compressor, get_modality
from bench.common import run_modalities, train


def _lossless(comp: Compressor) -> Compressor:
    return Compressor(comp.modality, comp.model, lossless=True)


def aec_lossless(comp: Compressor, files: list[bytes]) -> dict:
    """Total payload bytes, seconds per file (encode incl. the verifying decode), files stored,
    and the share of pieces whose latents + residual beat the classic predictors alone."""
    started = time.perf_counter()
    encoded = comp.encode([comp.load(d) for d in files], [True] * len(files))
    seconds = (time.perf_counter() - started) / max(1, len(files))
    for e, d in zip(encoded, files):
        assert comp.decode(e.payload)[0] == d, "lossless must restore the file byte for byte"
    used = [e.quality["model_used"] for e in encoded if "model_used" in e.quality]
    return {"bytes": sum(len(e.payload) for e in encoded), "encode_seconds_per_file": seconds,
            "stored_files": sum(e.quality["stored"] for e in encoded),
            "model_used_share": float(np.mean(used)) if used else 0.0}


def classic_lossless(comp: Compressor, samples: list) -> dict[str, int]:
    """Total bytes of each lossless codec the modality compares with (image: PNG optimize, WebP
    lossless; audio: FLAC at levels 0.5 and 1), over samples loaded by the lossless ``comp``."""
    sizes: dict[str, int] = {}
    for sample in samples:
        for name, blob, _ in comp.modality.classic_codecs(sample, lossless=True):
            sizes[name] = sizes.get(name, 0) + len(blob)
    return sizes


def bench_image(steps: int) -> dict:
    from jobs.sample_data import make_photo_collection

    paths = make_photo_collection("/tmp/aec-bench/photos-png", 160, sizes=(64, 96, 128), seed=7, jpeg_every=0)
    files = [p.read_bytes() for p in paths]
    mod = get_modality("image")
    train_half, test_half = files[::2], files[1::2]
    comp = _lossless(train("image-conv", "image", [mod.load(d) for d in train_half], steps, lmbda=0.01))
    aec = aec_lossless(comp, test_half)
    pixels = sum(np.prod(mod.load(d).shape[:2]) for d in test_half)
    sizes = {"aec lossless": aec.pop("bytes"), "png (the files)": sum(len(d) for d in test_half),
             **classic_lossless(comp, [comp.load(d) for d in test_half])}
    return {"collection": f"{len(files)} PNG photo crops (64-128 px); train/test halves",
            "bpp": {k: 8 * v / pixels for k, v in sizes.items()}, **aec}


def bench_audio(steps: int) -> dict:
    import soundfile as sf

    from jobs.sample_data import make_audio_collection

    files = []
    for p in make_audio_collection("/tmp/aec-bench/clips", 40, seed=5):
        frames, rate = sf.read(p, dtype="int16", always_2d=True)
        buf = io.BytesIO()
        sf.write(buf, frames, rate, format="WAV", subtype="PCM_16")
        files.append(buf.getvalue())
    mod = get_modality("audio")
    train_half, test_half = files[::2], files[1::2]
    comp = _lossless(train("audio-conv", "audio", [mod.load(d) for d in train_half], steps, lmbda=0.003))
    aec = aec_lossless(comp, test_half)
    values = sum(int(np.prod(mod.load(d).shape)) for d in test_half)
    sizes = {"aec lossless": aec.pop("bytes"), "wav (the files)": sum(len(d) for d in test_half),
             **classic_lossless(comp, [comp.load(d) for d in test_half])}
    return {"collection": f"{len(files)} generated clips as 16-bit WAV (8-48 kHz, 1-2 channels); train/test halves",
            "bits_per_sample": {k: 8 * v / values for k, v in sizes.items()}, **aec}


def main() -> None:
    run_modalities(__doc__, {"image": bench_image, "audio": bench_audio}, "docs/bench/lossless.json")


if __name__ == "__main__":
    main()
