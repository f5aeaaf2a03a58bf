"""Rate–distortion of a zoo image model on held-out photos, against JPEG, WebP and AVIF.

Two held-out sets, neither trained or tuned on:

- ``split``: the held-out 15 % of the zoo's own photo sources (``recipes.image_data``: photos
  from lomiri/ukui wallpapers, gcompris, stellarium, kstars, tuxpaint), at their stored size
  (at most 1024 px a side) and as central 256-px crops;
- ``independent``: photos of packages kept for independent evaluation (mate-backgrounds,
  plasma-workspace-wallpapers), downscaled the same way, full and 256-px crops.

For every image: aec's real payload (``Compressor.encode`` -> bytes -> ``decode``) at each rate
point, JPEG (quality 5-95), WebP (0-100) and AVIF (Pillow's libavif, 0-100 at speed 6): bits per
pixel, PSNR (RGB, 8 bits) and MS-SSIM. Curves average bpp and PSNR per setting over the images
(as CompressAI's published curves do). BD-rate against WebP (Bjøntegaard, PCHIP interpolation of
log-rate over PSNR) over the PSNR span WebP covers between 0.1 and 0.5 bpp. Also: encode/decode
speed on this machine, and a determinism check (encode here on one thread; decode in another
process on two threads; every payload must give the same bytes).

Lossless part (``--parts lossless``): the 256-px crops through aec's lossless mode at each rate
point (every payload decoded back to its PNG file byte for byte) against PNG (``optimize``) and
WebP lossless, in bits per pixel, with the share of pieces whose latents paid for themselves, and
why: the order-0 entropy of what each rate point's reconstruction leaves, beside its latents' rate
and a classic predictor's residual.

    python -m bench.image_rd --model zoo:image-small        # ~70 min on 2 cores for 50 photos
    python -m bench.image_rd --sets split --limit 50 --parts lossless --out docs/bench/image_lossless.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, features

from aecore import load_bundle, ms_ssim, psnr
from bench.common import BENCH_DIR, machine

__all__ = ["bd_rate", "main"]

JPEG_Q = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_Q = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
AVIF_Q = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90)
RATE_POINTS = (1.0, 2.0, 3.0, 4.0, 5.0)
INDEPENDENT = ("mate-backgrounds", "plasma-workspace-wallpapers")


def _encode_pil(img: Image.Image, fmt: str, q: int) -> tuple[int, np.ndarray]:
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": q}
    if fmt == "WEBP":
        kwargs["method"] = 6
    if fmt == "AVIF":
        kwargs["speed"] = 6
    img.save(buf, format=fmt, **kwargs)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as dec:
        return len(data), np.asarray(dec.convert("RGB"))


def _measure(ref: np.ndarray, dec: np.ndarray, nbytes: int) -> dict[str, float]:
    x = ref.astype(np.float32).transpose(2, 0, 1) / 255.0
    y = dec.astype(np.float32).transpose(2, 0, 1) / 255.0
    out = {"bpp": 8.0 * nbytes / (ref.shape[0] * ref.shape[1]), "psnr": psnr(x, y)}
    s = ms_ssim(x, y)
    if s is not None:
        out["ms_ssim"] = s
    return out


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def classic_points(images: list[np.ndarray]) -> dict[str, dict[int, list[dict[str, float]]]]:
    codecs = {"JPEG": JPEG_Q, "WebP": WEBP_Q}
    if features.check("avif"):
        codecs["AVIF"] = AVIF_Q
    out: dict[str, dict[int, list[dict[str, float]]]] = {}
    for name, qs in codecs.items():
        fmt = name.upper()
        out[name] = {q: [] for q in qs}
        for a in images:
            img = Image.fromarray(a)
            for q in qs:
                n, dec = _encode_pil(img, fmt, q)
                out[name][q].append(_measure(a, dec, n))
    return out


def aec_points(blob: bytes, images: list[np.ndarray], payloads: dict,
               also: Callable[[np.ndarray, np.ndarray], dict[str, float]] | None = None) -> tuple[dict, dict]:
    """aec's real payloads at each rate point; ``payloads`` collects them for the determinism check;
    ``also(original, restored)`` adds figures of its own to each point."""
    points: dict[float, list[dict[str, float]]] = {}
    timing = {"encode_s": 0.0, "decode_s": 0.0, "pixels": 0}
    for q in RATE_POINTS:
        comp = load_bundle(blob, rate_point=q)
        points[q] = []
        for k, a in enumerate(images):
            sample = comp.load(_png(a))
            t0 = time.perf_counter()
            payload = comp.encode([sample])[0].payload
            t1 = time.perf_counter()
            restored, _, _ = comp.decode(payload)
            t2 = time.perf_counter()
            timing["encode_s"] += t1 - t0
            timing["decode_s"] += t2 - t1
            timing["pixels"] += a.shape[0] * a.shape[1]
            with Image.open(io.BytesIO(restored)) as dec:
                dec_rgb = np.asarray(dec.convert("RGB"))
            points[q].append({**_measure(a, dec_rgb, len(payload)), **(also(a, dec_rgb) if also else {})})
            payloads[(q, k)] = (payload, hashlib.sha256(restored).hexdigest())
    return points, timing


def _mean_curve(points: dict[Any, list[dict[str, float]]]) -> list[dict[str, float]]:
    curve = []
    for setting, rows in points.items():
        keys = sorted({k for r in rows for k in r})
        curve.append({"setting": setting, **{k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}})
    return sorted(curve, key=lambda p: p["bpp"])


def bd_rate(anchor: list[dict], test: list[dict], low: float = 0.1, high: float = 0.5, metric: str = "psnr") -> float | None:
    """Bjøntegaard delta rate of ``test`` against ``anchor`` in percent (negative: fewer bits at
    equal quality), over the quality span the anchor covers between ``low`` and ``high`` bpp
    (PCHIP of log-rate over quality). None where the curves share no quality span."""
    from scipy.interpolate import PchipInterpolator

    def fn(curve):
        pts = sorted({(p[metric], np.log(p["bpp"])) for p in curve if metric in p})
        q, r = zip(*pts)
        return PchipInterpolator(np.array(q), np.array(r)), min(q), max(q)

    f_a, a_lo, a_hi = fn(anchor)
    f_t, t_lo, t_hi = fn(test)
    in_range = [p[metric] for p in anchor if low <= p["bpp"] <= high]
    if not in_range:
        return None
    lo, hi = max(min(in_range), t_lo, a_lo), min(max(in_range), t_hi, a_hi)
    if hi <= lo:
        return None
    grid = np.linspace(lo, hi, 200)
    diff = np.trapezoid(f_t(grid) - f_a(grid), grid) / (hi - lo)
    return float((np.exp(diff) - 1) * 100)


def crops(images: list[np.ndarray], size: int = 256) -> list[np.ndarray]:
    out = []
    for a in images:
        if min(a.shape[:2]) >= size:
            t, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
            out.append(np.ascontiguousarray(a[t : t + size, left : left + size]))
    return out


def independent_images(cache: Path, limit: int) -> list[np.ndarray]:
    """Photos of the evaluation-only packages, filtered and downscaled as the training photos."""
    from recipes.debs import distinct_files, extract
    from recipes.image_data import _SUFFIXES, _photo

    def roots():
        for package in INDEPENDENT:
            try:
                yield package, extract(package, cache)
            except Exception as exc:  # noqa: BLE001 - offline: the set is skipped, and said so
                print(f"independent set: {package} unavailable ({exc})", file=sys.stderr)

    out = []
    for _, _, data in distinct_files(roots(), _SUFFIXES):
        img = _photo(data)
        if img is not None:
            out.append(np.asarray(img.convert("RGB")))
    rng = np.random.default_rng(0)
    if len(out) > limit:
        out = [out[i] for i in sorted(rng.choice(len(out), limit, replace=False))]
    return out


_DECODE = """
import hashlib, sys, torch
torch.set_num_threads(2)
from aecore import load_bundle
comp = load_bundle(open(sys.argv[1], "rb").read())
data = open(sys.argv[2], "rb").read()
pos, out = 0, []
while pos < len(data):
    n = int.from_bytes(data[pos:pos + 4], "little")
    restored, _, _ = comp.decode(data[pos + 4:pos + 4 + n])
    out.append(hashlib.sha256(restored).hexdigest())
    pos += 4 + n
print("\\n".join(out))
"""


def determinism(blob: bytes, payloads: dict) -> dict[str, int]:
    """Decode every payload in a fresh process on two threads; count differing restorations."""
    keys = list(payloads)
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "m").write_bytes(blob)
        (Path(d) / "p").write_bytes(b"".join(len(payloads[k][0]).to_bytes(4, "little") + payloads[k][0] for k in keys))
        got = subprocess.run([sys.executable, "-c", _DECODE, str(Path(d) / "m"), str(Path(d) / "p")],
                             capture_output=True, text=True, check=True).stdout.split()
    differ = sum(g != payloads[k][1] for g, k in zip(got, keys))
    return {"payloads": len(keys), "differing": differ + abs(len(got) - len(keys))}


def evaluate(blob: bytes, images: list[np.ndarray], label: str) -> dict[str, Any]:
    payloads: dict = {}
    torch.set_num_threads(1)
    points, timing = aec_points(blob, images, payloads)
    torch.set_num_threads(2)
    classic = classic_points(images)
    curves = {"aec": _mean_curve(points), **{k: _mean_curve(v) for k, v in classic.items()}}
    webp = curves["WebP"]
    result = {
        "images": len(images),
        "megapixels": round(sum(a.shape[0] * a.shape[1] for a in images) / 1e6, 3),
        "curves": curves,
        "bd_rate_vs_webp_percent": {k: bd_rate(webp, c) for k, c in curves.items() if k != "WebP"},
        "bd_rate_vs_webp_ms_ssim_percent": {k: bd_rate(webp, c, metric="ms_ssim") for k, c in curves.items() if k != "WebP"},
        "speed_1_thread": {"encode_mp_per_s": timing["pixels"] / 1e6 / timing["encode_s"],
                           "decode_mp_per_s": timing["pixels"] / 1e6 / timing["decode_s"],
                           "encode_images_per_s": len(images) * len(RATE_POINTS) / timing["encode_s"],
                           "decode_images_per_s": len(images) * len(RATE_POINTS) / timing["decode_s"]},
        "determinism": determinism(blob, payloads),
    }
    print(label, json.dumps({k: result[k] for k in ("images", "bd_rate_vs_webp_percent", "speed_1_thread", "determinism")}),
          flush=True)
    return result


def _order0(residual: np.ndarray) -> float:
    """Bits per pixel of the residual ``[h, w, c]`` coded per channel by its own histogram."""
    bits = 0.0
    for c in range(residual.shape[-1]):
        _, counts = np.unique(residual[..., c], return_counts=True)
        p = counts / counts.sum()
        bits += float(-(p * np.log2(p)).sum())
    return bits


def _med(a: np.ndarray) -> np.ndarray:
    """The median edge detector of LOCO-I / JPEG-LS: each pixel predicted from left, top, top-left."""
    x = np.pad(a.astype(np.int64), ((1, 0), (1, 0), (0, 0)))
    left, top, corner = x[1:, :-1], x[:-1, 1:], x[:-1, :-1]
    hi, lo = np.maximum(left, top), np.minimum(left, top)
    return np.where(corner >= hi, lo, np.where(corner <= lo, hi, left + top - corner))


def why_lossless(blob: bytes, images: list[np.ndarray]) -> dict[str, float]:
    """Why the model does or does not pay in lossless mode: per rate point, the bits per pixel of
    its latents and the order-0 entropy of what its reconstruction leaves (x - x_hat), against
    the order-0 entropy of a classic predictor's residual (MED); means over the images."""
    out = {"x - MED predictor": float(np.mean([_order0(a.astype(np.int64) - _med(a)) for a in images]))}
    points, _ = aec_points(blob, images, {}, also=lambda a, dec: {"left": _order0(a.astype(np.int64) - dec)})
    for q, rows in points.items():
        out[f"q{q:g} latents"] = float(np.mean([r["bpp"] for r in rows]))
        out[f"q{q:g} x - x_hat"] = float(np.mean([r["left"] for r in rows]))
    return out


def lossless(blob: bytes, images: list[np.ndarray]) -> dict[str, Any]:
    """Bits per pixel of aec's lossless mode at each rate point and of the lossless classic codecs
    (the image modality's own: PNG optimize, WebP lossless) on ``images`` written as PNG files."""
    from bench.lossless import aec_lossless, classic_lossless

    files = [_png(a) for a in images]
    pixels = sum(a.shape[0] * a.shape[1] for a in images)
    torch.set_num_threads(1)
    result: dict[str, Any] = {"images": len(images), "bpp": {"png (the files)": 8 * sum(map(len, files)) / pixels}}
    for q in RATE_POINTS:
        aec = aec_lossless(load_bundle(blob, lossless=True, rate_point=q), files)  # verified byte for byte
        result["bpp"][f"aec q{q:g}"] = 8 * aec.pop("bytes") / pixels
        result[f"aec q{q:g}"] = aec
    comp = load_bundle(blob, lossless=True)
    result["bpp"].update({k: 8 * v / pixels for k, v in classic_lossless(comp, [comp.load(f) for f in files]).items()})
    result["order0_bpp"] = why_lossless(blob, images)
    torch.set_num_threads(2)
    print("lossless", json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:image-small", help="zoo:NAME or a bundle file")
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images/heldout"))
    parser.add_argument("--cache", type=Path, default=Path("build/debs"))
    parser.add_argument("--limit", type=int, default=60, help="images per set")
    parser.add_argument("--sets", default="split,independent")
    parser.add_argument("--parts", default="rd,lossless", help="rd (rate-distortion), lossless, or both")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "image_rd.json")
    args = parser.parse_args()
    if args.model.startswith("zoo:"):
        from aecore.zoo import zoo_bundle

        blob = zoo_bundle(args.model)
    else:
        blob = Path(args.model).read_bytes()
    sets: dict[str, list[np.ndarray]] = {}
    if "split" in args.sets:
        paths = sorted(args.data.glob("*.png"))[: args.limit]
        sets["split"] = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    if "independent" in args.sets:
        sets["independent"] = independent_images(args.cache, args.limit)
    results: dict[str, Any] = {"model": args.model, "machine": machine(),
                               "command": "python -m bench.image_rd " + " ".join(sys.argv[1:])}
    for name, images in sets.items():
        if not images:
            continue
        if "rd" in args.parts:
            results[f"{name}-full"] = evaluate(blob, images, f"{name}-full")
            results[f"{name}-256"] = evaluate(blob, crops(images), f"{name}-256")
        if "lossless" in args.parts:
            results[f"{name}-256-lossless"] = lossless(blob, crops(images))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
