"""Training throughput: Ray Train (TorchTrainer, DDP over gloo on CPU, NCCL on GPU) with 1 and
2 workers against the plain PyTorch loop a user would write, same model, batch and patches.

samples/s is the steady state: the median over epochs after the first, summed over workers
(each worker trains on its own shard). The wall time of `fit()` (start-up included) is
reported beside it.

    python -m bench.training --files 200 --epochs 6     # ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def plain_loop(root, epochs: int, batch: int, patches: int, threads: int | None) -> dict:
    import torch

    from aecore import build_model, build_objective, get_modality

    if threads:
        torch.set_num_threads(threads)
    mod = get_modality("image")
    model = build_model("image-conv", "tiny")
    objective = build_objective({"plain": None}, lmbda=0.01)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    rng = np.random.default_rng(0)
    files = sorted(p for p in root.iterdir())
    per_epoch, t_start = [], time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    for _ in range(epochs):
        t0, n = time.perf_counter(), 0
        # what the Ray pipeline does per epoch: read, decode, crop, shuffle, batch, step
        x_all = np.concatenate([mod.training_patches(mod.load(p.read_bytes()), model.native_size, patches, rng)
                                for p in files])
        rng.shuffle(x_all)
        for i in range(0, len(x_all), batch):
            x = torch.from_numpy(x_all[i : i + batch]).to(device)
            terms = objective(model, x)
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
            n += len(x)
        per_epoch.append(n / (time.perf_counter() - t0))
    return {"samples_per_s": statistics.median(per_epoch[1:] or per_epoch), "wall_seconds": time.perf_counter() - t_start}


def ray_train(root, epochs: int, batch: int, patches: int, workers: int, gpus: float) -> dict:
    import tempfile

    from cluster.runtime import ensure_ray
    from cluster.storage import Location
    from cluster.train import TrainConfig, train_model

    ensure_ray(log_to_driver=False)
    cfg = TrainConfig(modality="image", model="image-conv", preset="tiny", epochs=epochs, batch_size=batch,
                      learning_rate=2e-3, regularizers={"plain": None}, patches_per_item=patches, lmbda=0.01, seed=0,
                      steps=None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        result = train_model(cfg, Location.of(str(root)), Location.of(d), f"bench-{workers}", workers=workers, gpus=gpus)
    wall = time.perf_counter() - t0
    rates = result.metrics["samples_per_s_by_epoch"]  # rank 0's; every worker trains an equal shard
    per_worker = statistics.median(rates[1:] or rates)
    return {"samples_per_s": per_worker * workers, "wall_seconds": wall}


def main() -> None:
    import torch

    from bench.common import collection, machine, save

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patches", type=int, default=4)
    parser.add_argument("--gpus", type=float, default=1.0 if torch.cuda.is_available() else 0.0)
    args = parser.parse_args()
    root = collection(args.files, sizes=(64, 96), seed=31)
    results = {"plain PyTorch loop": plain_loop(root, args.epochs, args.batch, args.patches, None)}
    for workers in (1, 2):
        results[f"Ray Train, {workers} worker(s)"] = ray_train(root, args.epochs, args.batch, args.patches, workers,
                                                               args.gpus / workers if args.gpus else 0.0)
    base = results["plain PyTorch loop"]["samples_per_s"]
    for k, v in results.items():
        v["vs_plain"] = v["samples_per_s"] / base
        print(f"  {k:26s} {v['samples_per_s']:8.1f} samples/s ({v['vs_plain']:.2f}x plain)   fit wall {v['wall_seconds']:.1f} s")
    out = save("training" + ("-gpu" if args.gpus else ""), {
        "command": f"python -m bench.training --files {args.files} --epochs {args.epochs} --batch {args.batch}",
        "machine": machine(), "files": args.files, "epochs": args.epochs, "results": results})
    print(f"written: {out}")


if __name__ == "__main__":
    main()
