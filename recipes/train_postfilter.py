"""Train the zoo's post-filter for one classic image codec (``aecore.archive.postfilter``) on the
training photos of ``recipes.image_data`` (plain PyTorch, no Ray; CPU or GPU), resumable.

    python -m recipes.train_postfilter --codec avif --decay 0.3 --threads 2 --out build/zoo-train/pf-avif
    cp build/zoo-train/pf-avif/postfilter.safetensors aecore/zoo/weights/postfilter-avif.safetensors

Pairs: every training photo (at most 1024 px a side) is coded by the codec at ``--per-image``
settings drawn uniformly from the lower 90 % of its settings (AVIF quality 0-90, WebP 0-90,
JPEG XL distance 25-0.25: about 0.05-2 bits per pixel) and decoded; ``--patches`` patches of
``--patch`` px are cut from each at offsets that are multiples of 8 (the codecs' block grid stays
where the net sees it at decode), and cached in ``OUT/pairs.npz``. The last 5 % of the photos
(by name) are a validation set the recipe reports on (PSNR gain of the filter over the plain
decode); the held-out photos of ``recipes.image_data`` are never read.

Training: mean squared error of the filtered decode against the original, Adam at ``--lr`` 3e-4
(at 1e-3 the AVIF filter's loss blew up 300-fold near step 2,000 and never got back), warm-up then
a linear decay (``recipes.loop.learning_rate``), batches of ``--batch`` random ``--crop`` px crops
(offsets multiples of 8). The net starts as the identity (its last layer is zero).
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecore.archive.codec import get_file_codec
from aecore.archive.postfilter import PostFilteredCodec, PostFilterNet, save_postfilter
from recipes.loop import checkpoint, learning_rate, parse_training_arguments

__all__ = ["main", "make_pairs"]

GRID = 8


def _code_one(job: tuple[str, str, int, int, int, int]) -> list[tuple[np.ndarray, np.ndarray, int]]:
    path, codec_id, index, patches, patch, seed = job
    pf = get_file_codec(codec_id)
    assert isinstance(pf, PostFilteredCodec)
    base = pf.base()
    img = np.asarray(Image.open(path).convert("RGB"))
    dec = base.decompress_pixels(base.compress_pixels(img, pf.settings[index], "default"))
    rng = np.random.default_rng(seed)
    out = []
    h, w, _ = img.shape
    for _ in range(patches):
        top = int(rng.integers((h - patch) // GRID + 1)) * GRID
        left = int(rng.integers((w - patch) // GRID + 1)) * GRID
        out.append((img[top : top + patch, left : left + patch].copy(), dec[top : top + patch, left : left + patch].copy(),
                    index))
    return out


def make_pairs(paths: list[Path], codec_id: str, per_image: int, patches: int, patch: int, seed: int,
               workers: int) -> dict[str, np.ndarray]:
    """``{"original", "decoded": uint8 [N, patch, patch, 3], "index": int [N]}`` from ``paths``."""
    n = len(get_file_codec(codec_id).settings)
    top = int(0.9 * (n - 1))
    rng = np.random.default_rng(seed)
    jobs = [(str(p), codec_id, int(rng.integers(top + 1)), patches, patch, int(rng.integers(2**31)))
            for p in paths for _ in range(per_image)]
    jobs = [j for j in jobs if min(Image.open(j[0]).size) >= patch]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        found = [t for group in pool.map(_code_one, jobs, chunksize=4) for t in group]
    return {"original": np.stack([t[0] for t in found]), "decoded": np.stack([t[1] for t in found]),
            "index": np.array([t[2] for t in found], np.int64)}


def _tensors(pairs: dict[str, np.ndarray], rows: np.ndarray, crop: int, rng: np.random.Generator,
             condition) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    patch = pairs["original"].shape[1]
    top = int(rng.integers((patch - crop) // GRID + 1)) * GRID
    left = int(rng.integers((patch - crop) // GRID + 1)) * GRID
    sl = (rows, slice(top, top + crop), slice(left, left + crop))
    x = torch.from_numpy(pairs["original"][sl]).permute(0, 3, 1, 2).float().div_(255.0)
    y = torch.from_numpy(pairs["decoded"][sl]).permute(0, 3, 1, 2).float().div_(255.0)
    s = torch.tensor([condition(int(i)) for i in pairs["index"][rows]], dtype=torch.float32)
    return x, y, s


@torch.no_grad()
def validate(net: torch.nn.Module, pairs: dict[str, np.ndarray], condition) -> dict[str, float]:
    """Mean PSNR of the plain decode and of the filtered one over the validation patches."""
    net.eval()
    plain, filtered = [], []
    for i in range(0, len(pairs["index"]), 32):
        rows = np.arange(i, min(i + 32, len(pairs["index"])))
        x, y, s = _tensors(pairs, rows, pairs["original"].shape[1], np.random.default_rng(0), condition)
        z = net(y, s).mul(255).round().clamp(0, 255).div(255)
        for a, b in ((y, plain), (z, filtered)):
            mse = ((a - x) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
            b.extend((10 * torch.log10(1 / mse)).tolist())
    net.train()
    return {"val_psnr_plain": round(float(np.mean(plain)), 4), "val_psnr_filtered": round(float(np.mean(filtered)), 4),
            "val_gain_db": round(float(np.mean(filtered) - np.mean(plain)), 4)}


def main() -> None:
    import argparse
    import sys

    pre = argparse.ArgumentParser(add_help=False)
    for flag, kind, default in (("--codec", str, "avif"), ("--per-image", int, 2), ("--patches", int, 6),
                                ("--patch", int, 192), ("--channels", int, 64), ("--blocks", int, 6)):
        pre.add_argument(flag, type=kind, default=default)
    own, rest = pre.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = parse_training_arguments(__doc__, "build/zoo-data/images/train", "postfilter", "", 6000, 16, 128, 3e-4)
    codec_id = f"{own.codec}-pf"
    pf = get_file_codec(codec_id)
    assert isinstance(pf, PostFilteredCodec)
    cache = args.out / "pairs.npz"
    paths = sorted(args.data.glob("*.png"))
    n_val = max(1, len(paths) // 20)
    if cache.exists():
        loaded = np.load(cache)
        train_pairs = {k: loaded[f"train_{k}"] for k in ("original", "decoded", "index")}
        val_pairs = {k: loaded[f"val_{k}"] for k in ("original", "decoded", "index")}
    else:
        t0 = time.perf_counter()
        workers = max(1, args.threads or os.cpu_count() or 1)
        train_pairs = make_pairs(paths[:-n_val], codec_id, own.per_image, own.patches, own.patch, args.seed, workers)
        val_pairs = make_pairs(paths[-n_val:], codec_id, own.per_image, 2, own.patch, args.seed + 1, workers)
        np.savez(cache, **{f"train_{k}": v for k, v in train_pairs.items()}, **{f"val_{k}": v for k, v in val_pairs.items()})
        print(f"pairs: {len(train_pairs['index'])} train, {len(val_pairs['index'])} validation patches "
              f"in {time.perf_counter() - t0:.0f} s", flush=True)
    net = PostFilterNet(own.channels, own.blocks).to(args.device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    step, ckpt = 0, args.out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=True)
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}", flush=True)
    rng = np.random.default_rng([args.seed, step])
    net.train()
    total, t0 = 0.0, time.perf_counter()
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        rows = rng.integers(len(train_pairs["index"]), size=args.batch)
        x, y, s = (t.to(args.device, memory_format=torch.channels_last) if t.ndim == 4 else t.to(args.device)
                   for t in _tensors(train_pairs, rows, args.crop, rng, pf.condition))
        loss = torch.nn.functional.mse_loss(net(y, s), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip)
        optimizer.step()
        total += float(loss.detach())
        step += 1
        if step % args.checkpoint_every == 0 or step == args.steps:
            record = {"step": step, "lr": learning_rate(step - 1, args), "mse": total / args.checkpoint_every,
                      "s_per_step": round((time.perf_counter() - t0) / args.checkpoint_every, 3)}
            if step % args.eval_every == 0 or step == args.steps:
                record.update(validate(net, val_pairs, pf.condition))
            checkpoint(args.out, record, net, optimizer, step)
            total, t0 = 0.0, time.perf_counter()
    net.cpu().eval()
    extra = {"recipe": "python -m recipes.train_postfilter " + " ".join(rest + [f"--codec {own.codec}"]),
             "steps": step, "data": str(args.data), "photos": len(paths) - n_val,
             "pairs": int(len(train_pairs["index"])), **validate(net, val_pairs, pf.condition)}
    save_postfilter(net, args.out / "postfilter.safetensors", pf.base.codec_id, extra)
    print(f"wrote {args.out / 'postfilter.safetensors'}: {json.dumps(extra)}", flush=True)


if __name__ == "__main__":
    main()
