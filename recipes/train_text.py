"""Train the text zoo model (``text-causal``) on the text of ``recipes.text_data`` (plain PyTorch,
no Ray; CPU or GPU), resumable, with a warmup-stable-decay learning rate.

    python -m recipes.train_text --preset fast --steps 4000 --out build/zoo-train/text-fast

Each step draws ``--batch`` windows of ``--window`` bytes from the training text (files laid end
to end). Every ``--checkpoint-every`` steps the state is written atomically to
``OUT/checkpoint.pt`` and the held-out cross-entropy is logged; a re-run resumes. At the end the
latent prior is fitted (a histogram of ``round(y)`` over training windows), the zstd dictionary
of the classic fallback is trained on the training files, and ``OUT/model.safetensors`` is
written (a bundle, ``aecore.bundle``).
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

from aecore.bundle import dump_bundle
from aecore.codecs import FactorizedCategoricalCodec
from aecore.models import build_model
from aecore.regularizers import build_objective

__all__ = ["main"]


def load_corpus(folder: Path) -> tuple[np.ndarray, list[bytes]]:
    files = [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()]
    return np.frombuffer(b"".join(files), dtype=np.uint8), files


def windows(corpus: np.ndarray, size: int, count: int, rng: np.random.Generator) -> torch.Tensor:
    starts = rng.integers(0, len(corpus) - size, count)
    x = np.stack([corpus[s : s + size] for s in starts]).astype(np.float32) / 255.0
    return torch.from_numpy(x)[:, None]


def learning_rate(step: int, args: argparse.Namespace) -> float:
    decay_start = int(args.steps * (1 - args.decay))
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if step < decay_start:
        return args.lr
    t = min(1.0, (step + 1 - decay_start) / max(1, args.steps - decay_start))
    return args.lr * (1 - t) + args.lr / 20 * t


@torch.no_grad()
def evaluate(model: torch.nn.Module, held: torch.Tensor) -> dict[str, float]:
    model.eval()
    out = model(held)
    ce = float(model.distortion(held, out))
    rate = float(out["bits"].sum() / held.numel())
    model.train()
    return {"heldout_bits_per_byte": round(ce + rate, 4), "heldout_cross_entropy": round(ce, 4),
            "heldout_latent_bits_per_byte": round(rate, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/text"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lmbda", type=float, default=1.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--decay", type=float, default=0.2)
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    model = build_model("text-causal", args.preset).to(args.device)
    objective = build_objective({"plain": None}, lmbda=args.lmbda)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step, ckpt = 0, args.out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=args.device, weights_only=True)
        state["model"].pop("zstd_dictionary", None)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        print(f"resuming at step {step}", flush=True)
    corpus, files = load_corpus(args.data / "train")
    held_corpus, _ = load_corpus(args.data / "heldout")
    held = windows(held_corpus, args.window, 64, np.random.default_rng(1234)).to(args.device)
    rng = np.random.default_rng([args.seed, step])
    model.train()
    sums, t0 = {"loss": 0.0, "distortion": 0.0, "bits_per_element": 0.0}, time.perf_counter()
    while step < args.steps:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        x = windows(corpus, args.window, args.batch, rng).to(args.device)
        terms = objective(model, x)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss = float(terms["loss"].detach())
        if not math.isfinite(loss):
            raise SystemExit(f"loss is {loss} at step {step}; resume from the last checkpoint with a lower --lr")
        for k in sums:
            sums[k] += float(terms[k].detach())
        step += 1
        if step % args.checkpoint_every == 0 or step == args.steps:
            n = args.checkpoint_every
            record = {"step": step, "lr": learning_rate(step - 1, args), **{k: round(v / n, 5) for k, v in sums.items()},
                      "s_per_step": round((time.perf_counter() - t0) / n, 3), **evaluate(model, held)}
            with open(args.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
            os.replace(tmp, ckpt)
            sums, t0 = dict.fromkeys(sums, 0.0), time.perf_counter()
    finish(model.cpu().eval(), corpus, files, args, step)


@torch.no_grad()
def finish(model: torch.nn.Module, corpus: np.ndarray, files: list[bytes], args: argparse.Namespace, step: int,
           out: Path | None = None) -> Path:
    """Fit the latent prior and the zstd dictionary, write the bundle."""
    rng = np.random.default_rng(7)
    codec = FactorizedCategoricalCodec(model.latent_channels)
    hist = 0
    for _ in range(16):
        hist = hist + codec.histogram(torch.round(model.g_a(windows(corpus, args.window, 64, rng))).numpy())
    model.fit_codec(hist, codec.support)
    picks = rng.choice(len(files), min(len(files), 4000), replace=False)
    model.fit_classic([files[i][:65536] for i in picks])
    extra = {"recipe": "recipes.train_text", "args": {k: str(v) for k, v in vars(args).items()}, "steps": step,
             "data": "recipes.text_data: perl-doc, gnu-standards, debian-reference-en, python-django-doc, python3-django"}
    path = out or args.out / "model.safetensors"
    path.write_bytes(dump_bundle(model, "text-causal", "text", extra))
    print(f"wrote {path}", flush=True)
    return path


if __name__ == "__main__":
    main()
