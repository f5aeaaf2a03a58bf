"""The zoo's training loop (plain PyTorch, no Ray; CPU or GPU), shared by the recipes: resumable
from ``OUT/checkpoint.pt`` (written atomically every ``--checkpoint-every`` steps), a
warmup-stable-decay learning rate, gradient clipping, a held-out evaluation every
``--eval-every`` steps logged to ``OUT/log.jsonl``, and at the end the coder's tables computed
and ``OUT/model.safetensors`` written (a bundle, ``aecore.bundle``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from aecore.bundle import build_from_bundle, dump_bundle, read_bundle
from aecore.regularizers import build_objective

__all__ = ["checkpoint", "learning_rate", "parse_training_arguments", "train"]


def parse_training_arguments(doc: str, data: str, model: str, preset: str, steps: int, batch: int, crop: int,
                             lr: float) -> argparse.Namespace:
    """The recipes' shared command line (each gives its own defaults); seeds torch, makes ``--out``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(data))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default=model)
    parser.add_argument("--preset", default=preset)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--crop", type=int, default=crop)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--decay", type=float, default=0.15)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, help="a bundle to start from (its weights; this run's rate points)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    return args


def learning_rate(step: int, args: argparse.Namespace) -> float:
    decay_start = int(args.steps * (1 - args.decay))
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if step < decay_start:
        return args.lr
    t = (step - decay_start) / max(1, args.steps - decay_start)
    return args.lr * (1 - t) + args.lr / 20 * t


def checkpoint(out: Path, record: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
    """Log ``record`` (``OUT/log.jsonl`` and stdout) and write the state to ``OUT/checkpoint.pt`` atomically."""
    with open(out / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)
    tmp = out / "checkpoint.tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
    os.replace(tmp, out / "checkpoint.pt")


def train(model: torch.nn.Module, args: argparse.Namespace,
          stream_from: Callable[[np.random.Generator], Iterator[torch.Tensor]],
          evaluate: Callable[[torch.nn.Module], dict[str, float]], modality: str, recipe: str) -> None:
    """Train ``model`` on batches from ``stream_from(rng)`` for ``args.steps`` steps (resuming)."""
    objective = build_objective({"plain": None}, lmbda=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    step = 0
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
    elif args.init:
        model.warm_start(build_from_bundle(read_bundle(args.init.read_bytes())).to(args.device))
        print(f"starting from {args.init}", flush=True)
    stream = stream_from(np.random.default_rng([args.seed, step]))
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
        if not math.isfinite(float(terms["loss"].detach())):
            raise SystemExit(f"loss is {float(terms['loss'])} at step {step}; resume from the last checkpoint with a lower --lr")
        for k in sums:
            sums[k] += float(terms[k].detach())
        step += 1
        if step % args.checkpoint_every == 0 or step == args.steps:
            record = {"step": step, "lr": learning_rate(step - 1, args),
                      **{k: round(v / args.checkpoint_every, 5) for k, v in sums.items()},
                      "s_per_step": round((time.perf_counter() - t0) / args.checkpoint_every, 3)}
            if step % args.eval_every == 0 or step == args.steps:
                record.update(evaluate(model))
                model.train()
            checkpoint(args.out, record, model, optimizer, step)
            sums, t0 = dict.fromkeys(sums, 0.0), time.perf_counter()
    model.eval()
    model.update_tables()
    extra = {"recipe": recipe, "args": {k: str(v) for k, v in vars(args).items()}, "steps": step}
    (args.out / "model.safetensors").write_bytes(dump_bundle(model.cpu(), args.model, modality, extra))
    print(f"wrote {args.out / 'model.safetensors'}", flush=True)
