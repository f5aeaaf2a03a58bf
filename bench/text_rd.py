"""Lossless text: bits per byte of a text zoo model against gzip, xz, zstd (with and without a
dictionary) and brotli, on held-out text; encode/decode speed; the model's share of pieces.

Sets (none trained or tuned on):

- ``split``: the held-out tenth of the zoo's own sources (``recipes.text_data``);
- ``python-doc``: files of python3.11-doc (evaluation only), as the figure this replaces;
- ``finetune``: files of the zoo's held-out split (never trained on) in two halves, as a user
  would run it on a collection of their own: the zoo model fine-tuned for ``--finetune-steps`` on
  one half, the other half compressed, by the fine-tuned model and by the zoo model as shipped.
  zstd's dictionary for the comparison is trained on the same half. (python3.11-doc is kept for
  evaluation only, so nothing is fine-tuned on it.)

A run of some ``--sets`` updates those sets in ``--out`` and keeps the others.

Rates are total payload bits over total input bytes. Speed is measured on this machine, one
process (``decode_many`` over batches of 32 files, as ``aec decode`` runs).

    python -m bench.text_rd --model zoo:text-fast        # ~20 min on 2 cores
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aecore import load_bundle
from bench.common import BENCH_DIR, machine

__all__ = ["classic_bits", "main"]


def _files(folder: Path, limit: int, seed: int = 0) -> list[bytes]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    rng = np.random.default_rng(seed)
    if len(paths) > limit:
        paths = [paths[i] for i in sorted(rng.choice(len(paths), limit, replace=False))]
    return [p.read_bytes() for p in paths]


def classic_bits(files: list[bytes], dict_samples: list[bytes]) -> dict[str, float]:
    import zstandard

    total = sum(len(f) for f in files)
    out = {
        "gzip -9": sum(len(gzip.compress(f, 9)) for f in files),
        "xz -9e": sum(len(lzma.compress(f, preset=9 | lzma.PRESET_EXTREME)) for f in files),
        "zstd -19": sum(len(zstandard.ZstdCompressor(level=19).compress(f)) for f in files),
    }
    d = zstandard.train_dictionary(112_640, [s for s in dict_samples if s])
    z = zstandard.ZstdCompressor(level=19, dict_data=d)
    out["zstd -19 + dictionary"] = sum(len(z.compress(f)) for f in files)
    try:
        import brotli

        out["brotli -11"] = sum(len(brotli.compress(f, quality=11)) for f in files)
    except ImportError:
        pass
    return {k: 8.0 * v / total for k, v in out.items()}


def aec_bits(blob: bytes, files: list[bytes]) -> dict[str, Any]:
    comp = load_bundle(blob)
    total = sum(len(f) for f in files)
    t0 = time.perf_counter()
    encoded = comp.encode([comp.load(f) for f in files], [True] * len(files))
    t1 = time.perf_counter()
    payloads = [e.payload for e in encoded]
    restored: list[bytes] = []
    for i in range(0, len(payloads), 32):
        restored += [r[0] for r in comp.decode_many(payloads[i : i + 32])]
    t2 = time.perf_counter()
    return {
        "bits_per_byte": 8.0 * sum(len(p) for p in payloads) / total,
        "exact": all(r == f for r, f in zip(restored, files)),
        "model_used": float(np.mean([e.quality.get("model_used", 0.0) for e in encoded])),
        "encode_kb_per_s": total / 1000 / (t1 - t0),
        "decode_kb_per_s": total / 1000 / (t2 - t1),
        "files": len(files),
        "bytes": total,
    }


def finetune(blob: bytes, files: list[bytes], steps: int, lr: float = 3e-4) -> bytes:
    """The zoo model fine-tuned on ``files`` (plain PyTorch, the objective ``aec train`` uses)."""
    from aecore.bundle import build_from_bundle, read_bundle
    from aecore.regularizers import build_objective
    from recipes.train_text import finish

    header = read_bundle(blob)
    model = build_from_bundle(header)
    model.train()
    objective = build_objective({"plain": None}, lmbda=1.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    corpus = np.frombuffer(b"".join(files), np.uint8)
    rng = np.random.default_rng(0)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20) * (1 - 0.95 * step / steps)
        starts = rng.integers(0, len(corpus) - 1024, 16)
        x = torch.from_numpy(np.stack([corpus[s : s + 1024] for s in starts]).astype(np.float32) / 255)[:, None]
        loss = objective(model, x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    args = argparse.Namespace(window=1024, note="bench.text_rd fine-tune")
    out = Path("/tmp/aec-bench-text-finetuned.safetensors")
    finish(model, corpus, files, args, steps, out=out)  # the latent prior, the dictionary, the bundle
    return out.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="zoo:text-fast", help="zoo:NAME or a bundle file")
    parser.add_argument("--data", type=Path, default=Path("build/zoo-data/text"))
    parser.add_argument("--limit", type=int, default=120, help="files per set")
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--sets", default="split,python-doc,finetune")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "text_rd.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.model.startswith("zoo:"):
        from aecore.zoo import zoo_bundle

        blob = zoo_bundle(args.model)
    else:
        blob = Path(args.model).read_bytes()
    train = _files(args.data / "train", 2000, seed=1)
    results: dict[str, Any] = {"model": args.model, "machine": machine(),
                               "command": "python -m bench.text_rd " + " ".join(sys.argv[1:])}
    sets = args.sets.split(",")
    if "split" in sets:
        files = _files(args.data / "heldout", args.limit)
        results["split"] = {"aec": aec_bits(blob, files), **classic_bits(files, train)}
        print("split", json.dumps(results["split"]), flush=True)
    if "python-doc" in sets:
        files = _files(args.data / "python-doc" / "heldout", args.limit, seed=3)
        results["python-doc"] = {"aec": aec_bits(blob, files), **classic_bits(files, train)}
        print("python-doc", json.dumps(results["python-doc"]), flush=True)
    if "finetune" in sets:
        collection = _files(args.data / "heldout", 2 * args.limit, seed=5)
        half_a, half_b = collection[::2], collection[1::2]
        tuned = finetune(blob, half_a, args.finetune_steps)
        results["finetune"] = {"aec": aec_bits(tuned, half_b), "aec as shipped": aec_bits(blob, half_b),
                               **classic_bits(half_b, half_a), "steps": args.finetune_steps,
                               "train_files": len(half_a), "files": len(half_b)}
        print("finetune", json.dumps(results["finetune"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in sets:  # each set records the command that measured it
        if name in results:
            results[name]["command"] = results["command"]
    if args.out.exists():
        kept = json.loads(args.out.read_text())
        for value in kept.values():
            if isinstance(value, dict) and "aec" in value:
                value.setdefault("command", kept.get("command"))
        results = {**{k: v for k, v in kept.items() if k not in results}, **results}
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
