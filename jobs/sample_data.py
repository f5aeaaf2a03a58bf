"""A real photo collection, made offline from the sample photos inside scikit-image's wheel.

The photos (astronaut, coffee, chelsea the cat, rocket, the Hubble deep field, ...) are
cut into crops of a few sizes, saved as PNG and JPEG, RGB and grayscale, so a demo or a
test has a realistic, varied collection without any download at run time.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["PHOTOS", "make_photo_collection", "make_text_collection"]

# Photographs only (no synthetic test patterns); grayscale ones stay grayscale.
PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
)


def _photo_dir() -> Path:
    try:
        import skimage
    except ImportError:  # pragma: no cover - the set-up installs it
        raise SystemExit("the sample collection needs scikit-image: pip install 'aec[demo]'") from None
    return Path(os.path.dirname(skimage.__file__)) / "data"


def make_photo_collection(out: str | os.PathLike, count: int, sizes: tuple[int, ...] = (48, 64, 80), seed: int = 0,
                          jpeg_every: int = 5) -> list[Path]:
    """Write ``count`` crops under ``out`` (``<photo>-<n>.png|jpg``); returns their paths."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    photos = []
    for name in PHOTOS:
        path = _photo_dir() / name
        if path.exists():
            with Image.open(path) as img:
                img.load()
                photos.append((Path(name).stem, img.convert("L" if img.mode in ("L", "I", "I;16") else "RGB")))
    written = []
    for i in range(count):
        stem, img = photos[i % len(photos)]
        h = int(rng.choice(sizes))
        w = int(rng.choice(sizes))
        h, w = min(h, img.height), min(w, img.width)
        top = int(rng.integers(0, img.height - h + 1))
        left = int(rng.integers(0, img.width - w + 1))
        crop = img.crop((left, top, left + w, top + h))
        jpeg = jpeg_every and i % jpeg_every == jpeg_every - 1
        path = out / f"{stem}-{i:04d}.{'jpg' if jpeg else 'png'}"
        buf = io.BytesIO()
        crop.save(buf, format="JPEG" if jpeg else "PNG", **({"quality": 92} if jpeg else {}))
        path.write_bytes(buf.getvalue())
        written.append(path)
    return written


def make_text_collection(out: str | os.PathLike, count: int, seed: int = 0, max_bytes: int = 12_000) -> list[Path]:
    """Write ``count`` real text files under ``out``: modules of Python's standard library
    (English prose in docstrings and comments, code), each cut to at most ``max_bytes``."""
    import sysconfig

    rng = np.random.default_rng(seed)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size > 2000)
    picked = [sources[i] for i in sorted(rng.choice(len(sources), size=min(count, len(sources)), replace=False))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for src in picked:
        path = out / f"{src.stem}.txt"
        path.write_bytes(src.read_bytes()[:max_bytes])
        written.append(path)
    return written


def make_audio_collection(out: str | os.PathLike, count: int, seed: int = 0) -> list[Path]:
    """Write ``count`` generated audio clips (WAV, FLAC, OGG; 8-48 kHz; 1-2 channels; 0.5-3 s):
    harmonic tones with vibrato and decay, chirps and filtered noise. Generated, not recorded:
    no audio corpus ships inside a package the set-up installs."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    formats = [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"), ("ogg", "OGG", "VORBIS")]
    written = []
    for i in range(count):
        rate = int(rng.choice([8000, 16000, 22050, 44100, 48000]))
        channels = int(rng.choice([1, 1, 2]))
        t = np.arange(int(rate * rng.uniform(0.5, 3.0))) / rate
        f0 = rng.uniform(80, 600)
        kind = i % 3
        if kind == 0:  # a decaying harmonic note with vibrato
            phase = 2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)
            sig = sum(np.sin(k * phase) / k for k in range(1, 6)) * np.exp(-t * rng.uniform(0.5, 3))
        elif kind == 1:  # a chirp
            sig = np.sin(2 * np.pi * (f0 * t + rng.uniform(200, 2000) * t**2))
        else:  # noise through a one-pole low-pass, amplitude-modulated
            noise = rng.normal(size=t.size)
            sig = np.empty_like(noise)
            acc, a = 0.0, rng.uniform(0.6, 0.97)
            for k, v in enumerate(noise):
                acc = a * acc + (1 - a) * v
                sig[k] = acc
            sig *= 1 + 0.5 * np.sin(2 * np.pi * 3 * t)
        sig = 0.5 * sig / (np.max(np.abs(sig)) + 1e-9)
        frames = np.stack([sig * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float32)
        ext, fmt, subtype = formats[i % len(formats)]
        path = out / f"clip-{i:04d}.{ext}"
        sf.write(path, frames, rate, format=fmt, subtype=subtype)
        written.append(path)
    return written
