"""Train an image model of the zoo on the photos of ``recipes.image_data`` (plain PyTorch, no
Ray; CPU or GPU), resumable, with a warmup-stable-decay learning rate.

    python -m recipes.train_image --preset small --steps 30000 --out build/zoo-train/image-small

Every ``--checkpoint-every`` steps the state is written atomically to ``OUT/checkpoint.pt``; a
re-run with the same ``--out`` resumes there (a later ``--steps`` moves the decay phase). The
learning rate warms up over ``--warmup`` steps, holds, and decays linearly to 1/20 over the
last ``--decay`` share of the steps. Each step draws random crops (``--crop``, flipped at
random) and a rate point per crop (gain units). At the end the coder's tables are computed and
``OUT/model.safetensors`` written (a bundle, ``aecore.bundle``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecore.bundle import dump_bundle
from aecore.models import build_model
from aecore.regularizers import build_objective

__all__ = ["main"]


def load_images(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


def batches(images: list[np.ndarray], size: int, batch: int, rng: np.random.Generator):
    while True:
        out = np.empty((batch, size, size, 3), np.uint8)
        for i in range(batch):
            img = images[int(rng.integers(len(images)))]
            top = int(rng.integers(img.shape[0] - size + 1))
            left = int(rng.integers(img.shape[1] - size + 1))
            crop = img[top : top + size, left : left + size]
            out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        yield torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    decay_start = int(args.steps * (1 - args.decay))
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if step < decay_start:
        return args.lr
    t = (step - decay_start) / max(1, args.steps - decay_start)
    return args.lr * (1 - t) + args.lr / 20 * t


@torch.no_grad()
def evaluate(model: torch.nn.Module, crops: torch.Tensor) -> dict[str, float]:
    """Held-out crops at each rate point: bits per pixel (ideal code length) and PSNR, rounding."""
    model.eval()
    out = {}
    for q in range(1, len(model.lambdas) + 1):
        model.rate_point = float(q)
        r = model(crops)
        mse = torch.mean((r["x_hat"].clamp(0, 1) - crops) ** 2, dim=(1, 2, 3))
        out[f"q{q}_bpp"] = round(float(r["bits"].sum() / (crops.shape[0] * crops.shape[2] * crops.shape[3])), 4)
        out[f"q{q}_psnr"] = round(float(torch.mean(10 * torch.log10(1 / mse))), 3)
    model.train()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/images"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="image-hyperprior")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--decay", type=float, default=0.15)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = build_model(args.model, args.preset).to(args.device)
    objective = build_objective({"plain": None}, lmbda=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, log = 0, args.out / "log.jsonl"
    ckpt = args.out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=True)
        # The coder's tables are made at the end (update_tables); a checkpoint's may have another layout.
        weights = {k: v for k, v in state["model"].items() if not k.endswith((".pmf", ".radius"))}
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected or any(not k.endswith((".pmf", ".radius")) for k in missing):
            raise SystemExit(f"checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}", flush=True)
    images = load_images(args.data / "train")
    rng = np.random.default_rng([args.seed, step])
    held = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((args.data / "heldout").glob("*.png"))[:16]]
    crops = torch.stack([torch.from_numpy(np.ascontiguousarray(h[:256, :256])).permute(2, 0, 1).float() / 255
                         for h in held]).to(args.device)
    stream = batches(images, args.crop, args.batch, rng)
    model.train()
    sums, t0 = {"loss": 0.0, "distortion": 0.0, "bits_per_element": 0.0}, time.perf_counter()
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        x = next(stream).to(args.device)
        terms = objective(model, x)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        if not math.isfinite(float(terms["loss"])):
            raise SystemExit(f"loss is {float(terms['loss'])} at step {step}; resume from the last checkpoint with a lower --lr")
        for k in sums:
            sums[k] += float(terms[k])
        step += 1
        if step % args.checkpoint_every == 0 or step == args.steps:
            record = {"step": step, "lr": learning_rate(step - 1, args),
                      **{k: round(v / args.checkpoint_every, 5) for k, v in sums.items()},
                      "s_per_step": round((time.perf_counter() - t0) / args.checkpoint_every, 3)}
            if step % args.eval_every == 0 or step == args.steps:
                record.update(evaluate(model, crops))
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
            os.replace(tmp, ckpt)
            sums, t0 = dict.fromkeys(sums, 0.0), time.perf_counter()
    model.eval()
    model.update_tables()
    extra = {"recipe": "recipes.train_image", "args": {k: str(v) for k, v in vars(args).items()}, "steps": step}
    (args.out / "model.safetensors").write_bytes(dump_bundle(model.cpu(), args.model, "image", extra))
    print(f"wrote {args.out / 'model.safetensors'}", flush=True)


if __name__ == "__main__":
    main()
