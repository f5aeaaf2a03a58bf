"""What the benchmarks share: a collection, a quickly trained model, the machine, result files."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1] / "docs" / "bench"
WORK = Path(os.environ.get("AEC_BENCH_WORK", "/tmp/aec-bench"))


def machine() -> dict[str, Any]:
    import torch

    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpus": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "gpu": gpu, "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}


def collection(count: int, sizes: tuple[int, ...] = (96, 128, 160), seed: int = 11) -> Path:
    from jobs.sample_data import make_photo_collection

    root = WORK / f"photos-{count}-{'-'.join(map(str, sizes))}-{seed}"
    if not root.exists() or len(list(root.iterdir())) < count:
        make_photo_collection(root, count, sizes=sizes, seed=seed, jpeg_every=0)
    return root


def speed_bundle(preset: str) -> bytes:
    """An image model of ``preset`` with its initial weights: for speed, which weights do not change."""
    from aecore import build_model, dump_bundle

    model = build_model("image-conv", preset)
    return dump_bundle(model.uniform_prior(), "image-conv", "image")


def model_bundle(steps: int = 150) -> bytes:
    """The tiny image model trained briefly in-process (speed does not depend on how well)."""
    from aecore import dump_bundle, get_modality
    from jobs.sample_data import make_photo_collection

    path = WORK / f"model-{steps}.aec"
    if path.exists():
        return path.read_bytes()
    paths = make_photo_collection(WORK / "train-photos", 64, sizes=(64, 96), seed=3, jpeg_every=0)
    mod = get_modality("image")
    comp = train("image-conv", "image", [mod.load(p.read_bytes()) for p in paths], steps, lmbda=0.01)
    data = dump_bundle(comp.model, "image-conv", "image")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def run_modalities(doc: str, benches: dict[str, Any], out: str) -> None:
    """The command line of a per-modality benchmark: ``--modality`` (one or all), ``--steps``
    and ``--out``; each bench is called with the steps, printed as it finishes and written to
    ``out`` with the machine and the time taken. Re-running one modality keeps the others' figures."""
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", choices=[*benches, "all"], default="all")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", default=out)
    args = parser.parse_args()
    torch.set_num_threads(2)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "steps": args.steps}
    started = time.time()
    for name, bench in benches.items():
        if args.modality in (name, "all"):
            results[name] = bench(args.steps)
            print(json.dumps(results[name], indent=1), flush=True)
    results["seconds"] = round(time.time() - started)
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    if args.modality != "all" and path.exists():
        results = {**json.loads(path.read_text()), **results}
    path.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out} in {results['seconds']} s")


def save(name: str, result: dict[str, Any]) -> Path:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2))
    return path


def train(model_name: str, modality: str, samples, steps: int, lmbda: float, batch: int = 32, seed: int = 0):
    """The ``tiny`` preset of ``model_name`` trained in-process (plain PyTorch, the objective the
    Ray Train loop uses), its latent prior fitted: a Compressor for the rate-distortion benches."""
    import numpy as np
    import torch

    from aecore import Compressor, FactorizedCategoricalCodec, build_model, build_objective, get_modality

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mod = get_modality(modality)
    model = build_model(model_name, "tiny")
    objective = build_objective({"plain": None}, lmbda=lmbda)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        idx = rng.integers(0, len(samples), batch)
        x = torch.from_numpy(np.concatenate([mod.training_patches(samples[i], model.native_size, 1, rng) for i in idx]))
        terms = objective(model, x)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    model.eval()
    codec = FactorizedCategoricalCodec(model.latent_channels)
    hist = 0
    with torch.no_grad():
        for s in samples:
            x = torch.from_numpy(mod.training_patches(s, model.native_size, 4, rng))
            hist = hist + codec.histogram(torch.round(model.g_a(x)).numpy())
    model.fit_codec(hist, codec.support)
    return Compressor(mod, model)
