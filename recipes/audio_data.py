"""Recordings for the audio zoo, from Debian packages the set-up can install (never from the
packages kept for independent evaluation), split by file into train and held-out.

    python -m recipes.audio_data [--out build/zoo-data/audio] [--native]

Speech: klettres-data (letters and syllables read aloud by people, many languages); music and
recorded sound: singularity-music, frozen-bubble-data, hyperrogue-music, nexuiz-music (inside a
``.pk3`` zip), planetblupi-music-ogg, tuxtype-data, gcompris-qt-data (inside Qt ``.rcc`` files).
(fb-music-high is tracker modules, which no decoder here plays.)
Every file is decoded, mixed down to mono, resampled to 16 kHz (polyphase, scipy) and written as
16-bit WAV; clips shorter than 0.25 s or silent are dropped, and music longer than 60 s is cut
into 60 s pieces (so one long track does not dominate a split). A file is held out when
``sha256(package/path) % 100 < 15`` (all pieces of a file go to one split); held-out clips are
never trained on.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from recipes.debs import distinct_files, extract, training_packages

__all__ = ["PACKAGES", "RATE", "collect"]

SPEECH = ["klettres-data"]
MUSIC = ["singularity-music", "frozen-bubble-data", "hyperrogue-music", "nexuiz-music", "planetblupi-music-ogg",
         "tuxtype-data", "gcompris-qt-data"]
PACKAGES = training_packages(SPEECH + MUSIC)
RATE = 16_000
MIN_SECONDS, PIECE_SECONDS = 0.25, 60
_SUFFIXES = (".ogg", ".wav", ".flac", ".oga")


def _mono16k(data: bytes) -> np.ndarray | None:
    try:
        x, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError):
        return None
    x = x.mean(axis=1)
    if rate != RATE:
        g = gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g).astype(np.float32)
    if len(x) < MIN_SECONDS * RATE or float(np.sqrt(np.mean(x**2))) < 1e-3:
        return None
    return np.clip(x, -1.0, 1.0)


def heldout(key: str) -> bool:
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % 100 < 15


def collect(cache: Path, out: Path) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, float]] = {}
    for package, rel, data in distinct_files(((p, extract(p, cache)) for p in PACKAGES), _SUFFIXES):
        kind = "speech" if package in SPEECH else "music"
        x = _mono16k(data)
        if x is None:
            continue
        _write_pieces(out, f"{package}/{rel}", kind, x, RATE, PIECE_SECONDS, counts)
    return counts


def _write_pieces(out: Path, key: str, kind: str, x: np.ndarray, rate: int, seconds: int,
                  counts: dict[str, dict[str, float]]) -> None:
    """Write ``x`` as 16-bit WAV pieces of ``seconds`` under ``out/SPLIT/KIND`` (the split by
    ``key``); pieces under the minimum length are dropped."""
    split = "heldout" if heldout(key) else "train"
    stem = hashlib.sha256(key.encode()).hexdigest()[:12] + "-" + Path(key).stem[:40]
    folder = out / split / kind
    folder.mkdir(parents=True, exist_ok=True)
    piece = seconds * rate
    for i in range(0, len(x), piece):
        chunk = x[i : i + piece]
        if len(chunk) < MIN_SECONDS * rate:
            continue
        sf.write(folder / f"{stem}-{i // piece:02d}.wav", chunk, rate, subtype="PCM_16")
        c = counts.setdefault(f"{split}/{kind}", {"files": 0, "seconds": 0.0})
        c["files"] += 1
        c["seconds"] += len(chunk) / rate


def collect_native(cache: Path, out: Path, seconds: int = 30) -> dict[str, dict[str, float]]:
    """The music as it ships, for the lossless benchmark's 22-48 kHz mono and stereo set: each
    file decoded at its own rate and channel count to 16-bit WAV, in pieces of ``seconds``; the
    same train/held-out split by key as :func:`collect`."""
    counts: dict[str, dict[str, float]] = {}
    for package, rel, data in distinct_files(((p, extract(p, cache)) for p in MUSIC), _SUFFIXES):
        try:
            x, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, ValueError):
            continue
        if rate < 22_050 or len(x) < MIN_SECONDS * rate or not np.abs(x).max() > 32:
            continue
        _write_pieces(out, f"{package}/{rel}", f"{rate // 1000} kHz x{x.shape[1]}", x, rate, seconds, counts)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("build/debs"))
    parser.add_argument("--out", type=Path, default=Path("build/zoo-data/audio"))
    parser.add_argument("--native", action="store_true",
                        help="also the music at its own rate and channels (under OUT/native): bench.lms_audio's stereo set")
    args = parser.parse_args()
    print(collect(args.cache, args.out))
    if args.native:
        print(collect_native(args.cache, args.out / "native"))


if __name__ == "__main__":
    main()
