"""Rate–distortion of aec's autoencoders against the classic codecs a user would reach for.

Per modality, a model is trained on one half of a real collection (plain PyTorch, the same
aecore objective the Ray Train loop uses) and measured on the other half:

- image: PSNR (and MS-SSIM on the crops of 161 px and more) at the payload's bits per pixel,
  against Pillow JPEG and WebP at matched rate (per image, the quality setting whose size is
  closest to aec's payload);
- audio: SNR and log-spectral distance at the payload's kbit/s, against Opus (soundfile,
  libopus) at matched rate (the compression level whose size is closest);
- text: bits per byte of the lossless payload, against gzip -9, xz -9, zstd -19 and zstd -19
  with a dictionary trained on the training half.

    python -m bench.rd_classic                 # all three, ~10 min on 2 cores
    python -m bench.rd_classic --modality text --steps 600
"""

from __future__ import annotations

import gzip
import io
import lzma
from pathlib import Path

import numpy as np

from aecore import get_modality, ms_ssim, psnr
from bench.common import run_modalities, train


def _closest(target: int, candidates: dict) -> tuple:
    return min(candidates.items(), key=lambda kv: abs(len(kv[1]) - target))


def bench_image(steps: int, lmbdas: list[float]) -> dict:
    from PIL import Image

    from jobs.sample_data import make_photo_collection

    root = Path("/tmp/aec-bench/photos")
    paths = make_photo_collection(root, 160, sizes=(64, 128, 192, 256), seed=7, jpeg_every=0)
    mod = get_modality("image")
    samples = [mod.load(p.read_bytes()) for p in paths]
    train_half, test_half = samples[::2], samples[1::2]
    rows = []
    for lmbda in lmbdas:
        comp = train("image-conv", "image", train_half, steps, lmbda)
        enc = comp.encode(test_half, [True] * len(test_half))
        res = {"lmbda": lmbda, "aec": [], "jpeg": [], "webp": []}
        for s, e in zip(test_half, enc):
            h, w, c = s.shape
            img = Image.fromarray((s.x.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8))
            if c == 1:
                img = img.convert("L")
            original = np.asarray(img, dtype=np.float32) / 255.0
            restored = np.asarray(Image.open(io.BytesIO(comp.decode(e.payload)[0])), dtype=np.float32) / 255.0
            res["aec"].append((8 * len(e.payload) / (h * w), psnr(original, restored), _ms_ssim(original, restored)))
            for fmt, key in (("JPEG", "jpeg"), ("WEBP", "webp")):
                options = {}
                for q in range(1, 96, 3):
                    buf = io.BytesIO()
                    img.save(buf, format=fmt, quality=q)
                    options[q] = buf.getvalue()
                _, data = _closest(len(e.payload), options)
                dec = np.asarray(Image.open(io.BytesIO(data)).convert(img.mode), dtype=np.float32) / 255.0
                res[key].append((8 * len(data) / (h * w), psnr(original, dec), _ms_ssim(original, dec)))
        rows.append({k: (v if k == "lmbda" else {"bpp": float(np.mean([a for a, _, _ in v])),
                                                  "psnr": float(np.mean([b for _, b, _ in v])),
                                                  "ms_ssim": float(np.mean([m for _, _, m in v if m is not None]))})
                     for k, v in res.items()})
    return {"collection": f"{len(samples)} photo crops (64-256 px) from scikit-image's samples; train/test halves; "
                          "MS-SSIM over the crops of 161 px and more on each side",
            "points": rows}


def _ms_ssim(a: np.ndarray, b: np.ndarray) -> float | None:
    """MS-SSIM of HxW or HxWxC pixel arrays in [0, 1]."""
    to_chw = (lambda x: x[None]) if a.ndim == 2 else (lambda x: x.transpose(2, 0, 1))  # noqa: E731
    return ms_ssim(to_chw(a), to_chw(b))


def bench_audio(steps: int, lmbdas: list[float]) -> dict:
    import soundfile as sf

    from aecore.modalities.audio import MODEL_RATE, log_spectral_distance
    from jobs.sample_data import make_audio_collection

    paths = make_audio_collection("/tmp/aec-bench/clips", 40, seed=5)
    mod = get_modality("audio")
    samples = [mod.load(p.read_bytes()) for p in paths]
    train_half, test_half = samples[::2], samples[1::2]
    rows = []
    for lmbda in lmbdas:
        comp = train("audio-conv", "audio", train_half, steps, lmbda)
        enc = comp.encode(test_half, [True] * len(test_half))
        res = {"lmbda": lmbda, "aec": [], "opus": []}
        for s, e in zip(test_half, enc):
            seconds = s.info.shape[0] / s.info.rate
            c = s.info.shape[1]
            ref = s.x[0].reshape(c, -1)  # 16 kHz, what both codecs are measured on
            _, x_hat, _ = comp.decode(e.payload)
            x_hat = x_hat[0].reshape(c, -1)
            res["aec"].append((8 * len(e.payload) / seconds / 1000, _snr(ref, x_hat),
                               log_spectral_distance(ref.ravel(), x_hat.ravel())))
            options = {}
            for level in np.linspace(0.0, 1.0, 11):
                buf = io.BytesIO()
                sf.write(buf, ref.T, MODEL_RATE, format="OGG", subtype="OPUS", compression_level=float(level))
                options[float(level)] = buf.getvalue()
            _, data = _closest(len(e.payload), options)
            dec, _ = sf.read(io.BytesIO(data), always_2d=True, dtype="float32")
            dec = dec.T[:, : ref.shape[1]]
            dec = np.pad(dec, ((0, 0), (0, ref.shape[1] - dec.shape[1])))
            res["opus"].append((8 * len(data) / seconds / 1000, _snr(ref, dec), log_spectral_distance(ref.ravel(), dec.ravel())))
        rows.append({k: (v if k == "lmbda" else {"kbps": float(np.mean([a for a, _, _ in v])),
                                                  "snr": float(np.mean([b for _, b, _ in v])),
                                                  "lsd": float(np.mean([d for _, _, d in v]))}) for k, v in res.items()})
    return {"collection": f"{len(samples)} generated clips (tones, chirps, filtered noise; 8-48 kHz), measured at 16 kHz",
            "points": rows}


def _snr(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / max(np.sum((x - y).astype(np.float64) ** 2), 1e-12)))


def bench_text(steps: int) -> dict:
    import zstandard

    from jobs.sample_data import make_text_collection

    paths = make_text_collection("/tmp/aec-bench/texts", 120, seed=3, max_bytes=12_000)
    data = [p.read_bytes() for p in paths]
    mod = get_modality("text")
    train_half, test_half = data[::2], data[1::2]
    comp = train("text-byte", "text", [mod.load(d) for d in train_half], steps, lmbda=1.0)
    enc = comp.encode([mod.load(d) for d in test_half])
    assert all(comp.decode(e.payload)[0] == d for e, d in zip(enc, test_half)), "lossless text must restore exactly"
    total = sum(len(d) for d in test_half)
    zdict = zstandard.train_dictionary(16384, train_half)
    sizes = {
        "aec (lossless)": sum(len(e.payload) for e in enc),
        "gzip -9": sum(len(gzip.compress(d, 9)) for d in test_half),
        "xz -9": sum(len(lzma.compress(d, preset=9)) for d in test_half),
        "zstd -19": sum(len(zstandard.ZstdCompressor(level=19).compress(d)) for d in test_half),
        "zstd -19 + dict": sum(len(zstandard.ZstdCompressor(level=19, dict_data=zdict).compress(d)) for d in test_half),
    }
    return {"collection": f"{len(data)} files of Python's standard library (<= 12 kB each), per-file compression",
            "bits_per_byte": {k: 8 * v / total for k, v in sizes.items()}}


def main() -> None:
    run_modalities(__doc__, {"image": lambda steps: bench_image(steps, [0.003, 0.01, 0.04]),
                             "audio": lambda steps: bench_audio(steps, [0.003, 0.03]), "text": bench_text},
                   "docs/bench/rd_classic.json")


if __name__ == "__main__":
    main()
