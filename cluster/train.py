"""Training an autoencoder with Ray Train (TorchTrainer, DDP; GPU when asked and present).

The collection is streamed to the workers as a Ray Data dataset of fixed-size patches;
rank 0 checkpoints every epoch to the run's storage so a restarted run resumes, and the
final checkpoint holds the model bundle (weights, config and the fitted latent prior).
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import ray
import ray.train
import torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from aecore import (
    ConvAutoEncoder,
    FactorizedCategoricalCodec,
    UnreadableInput,
    build_model,
    build_objective,
    dump_bundle,
    get_modality,
    read_bundle,
)
from aecore.bundle import build_from_bundle
from aecore.registry import MODELS
from aecore.regularizers import model_overrides
from cluster.loopback import LoopbackTorchConfig, loopback_cluster
from cluster.runtime import IO_TASK_CPUS, actor_cpus, check_pool_fits, io_tasks
from cluster.storage import InputFile, Location, list_collection

__all__ = ["TrainConfig", "TrainResult", "build_training_model", "collection_digest", "keep_better", "learning_rate",
           "measure_heldout", "split_heldout", "train_model"]

#: CPUs a patch task asks (decoding and cropping: light, and it must fit beside other jobs' actors)
PATCH_TASK_CPUS = 0.5

BUNDLE_FILE = "model.aec"
STATE_FILE = "state.pt"


@dataclass(frozen=True)
class TrainConfig:
    modality: str
    model: str  # registry model class, e.g. "image-hyperprior"
    preset: str | None
    epochs: int
    batch_size: int
    learning_rate: float
    regularizers: dict[str, float | None]
    lmbda: float
    patches_per_item: int
    seed: int
    #: stop after this many optimizer steps (per worker), whatever ``epochs`` says
    steps: int | None
    prior_support: int = 48
    #: optimizer steps the learning-rate schedule spans (warmup, hold, linear decay to 1/20)
    schedule_steps: int = 0
    #: a bundle to start from (warm start), or None to start from scratch
    init: bytes | None = None
    #: side of the training crops; None: the model's own
    patch_size: int | None = None


@dataclass(frozen=True)
class TrainResult:
    bundle: bytes
    metrics: dict[str, Any]
    files: int
    input_bytes: int
    heldout: dict[str, Any] = field(default_factory=dict)
    storage: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    heldout_files: tuple[InputFile, ...] = ()  # what ``heldout`` was measured on (for the promotion gate)
    content_sha256: str = ""  # digest over every file's key and content: the version's data lineage
    #: which model ``bundle`` is: "fine-tuned", or "starting point" where the model it started from
    #: coded the held-out tenth better (``keep_better``); with each one's held-out figure
    kept: str = "fine-tuned"
    candidates: dict[str, Any] = field(default_factory=dict)


def make_patches(batch: pa.Table, modality: str, size: int, count: int, seed: int) -> dict[str, np.ndarray]:
    """Ray Data preprocessing: file bytes -> random training crops. Unreadable files are
    skipped here (compress jobs report them as error rows)."""
    mod = get_modality(modality)
    rng = np.random.default_rng([seed, time.monotonic_ns()])
    out = []
    for data in batch.column("bytes").to_pylist():
        try:
            out.append(mod.training_patches(mod.load(data), size, count, rng))
        except UnreadableInput:
            continue
    if not out:
        return {"x": np.empty((0, mod.channels) + (size,) * mod.spatial_dims, dtype=np.float32)}
    return {"x": np.concatenate(out)}


def learning_rate(step: int, base: float, total: int, warmup_share: float = 0.05, decay_share: float = 0.3) -> float:
    """Warmup (linear, the first 5 % of steps, at most 500), hold, then a linear decay to 1/20 over
    the last 30 %: short fine-tunes and long runs alike end at a small rate."""
    if total <= 0:
        return base
    warmup = max(1, min(500, int(total * warmup_share)))
    decay_start = int(total * (1 - decay_share))
    if step < warmup:
        return base * (step + 1) / warmup
    if step < decay_start:
        return base
    t = min(1.0, (step + 1 - decay_start) / max(1, total - decay_start))
    return base * (1 - t) + base / 20 * t


def build_training_model(cfg: TrainConfig) -> ConvAutoEncoder:
    """The model to train: the ``init`` bundle's architecture and weights (warm start), else a new
    ``cfg.model`` of ``cfg.preset``; regularizers that need a model config get it."""
    overrides = model_overrides(cfg.regularizers)
    if cfg.init is None:
        return build_model(cfg.model, cfg.preset, **overrides)
    bundle = read_bundle(cfg.init)
    clash = {k: v for k, v in overrides.items() if bundle["config"].get(k, False) != v}
    if clash:
        raise ValueError(f"the init model was trained without {', '.join(clash)}; set init: none to train from scratch")
    return build_from_bundle(bundle)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, rank: int) -> tuple[int, int]:
    """Resume from the run's last checkpoint: ``(first epoch, steps done)``."""
    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return 0, 0
    with checkpoint.as_directory() as d:
        state = torch.load(os.path.join(d, STATE_FILE), weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    print(f"[aec] rank {rank}: resuming from the checkpoint of epoch {state['epoch']}", flush=True)
    return state["epoch"] + 1, state.get("step", 0)


def _run_epoch(ddp_model: torch.nn.Module, objective: Any, optimizer: torch.optim.Optimizer, batches: Any,
               cfg: TrainConfig, step: int) -> tuple[dict[str, float], int]:
    ddp_model.train()
    sums = {"loss": 0.0, "distortion": 0.0, "bits_per_element": 0.0}
    n, t0 = 0, time.perf_counter()
    for batch in batches:
        if cfg.steps is not None and step >= cfg.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg.learning_rate, cfg.schedule_steps)
        x = batch["x"]
        terms = objective(ddp_model, x)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(ddp_model.parameters(), 1.0)
        optimizer.step()
        step += 1
        for k in sums:
            sums[k] += float(terms[k].detach()) * len(x)
        n += len(x)
    metrics = {k: v / max(n, 1) for k, v in sums.items()}
    metrics.update(samples=n, samples_per_s=n / (time.perf_counter() - t0), step=step)
    return metrics, step


@torch.no_grad()
def _fit_and_measure(model: ConvAutoEncoder, batches: Any, cfg: TrainConfig, world: int) -> dict[str, Any]:
    """One inference pass: fit the latent prior (a histogram of round(y), for models coded that
    way; the others make their tables) and measure the model as a compress job uses it."""
    model.eval()
    model.update_tables()
    hist = np.zeros((model.latent_channels, 2 * cfg.prior_support + 1), dtype=np.int64)
    sse, count, pixels, sae, bits = 0.0, 0, 0, 0.0, 0.0
    for batch in batches:
        x = batch["x"]
        out = model(x)
        if model.histogram_prior:
            hist += FactorizedCategoricalCodec(model.latent_channels, cfg.prior_support).histogram(out["y_hat"].cpu().numpy())
        else:
            bits += float(out["bits"].sum())
        sse += float(model.distortion(x, out)) * x.numel()
        if model.distortion_unit == "mse":
            sae += float(torch.sum(torch.abs(out["x_hat"] - x)))
        count += x.numel()
        pixels += x[:, 0].numel()
    totals = torch.tensor([sse, count, pixels, sae, bits], dtype=torch.float64)
    hist_t = torch.from_numpy(hist)
    if world > 1:
        torch.distributed.all_reduce(totals)
        torch.distributed.all_reduce(hist_t)
    sse, count, pixels, sae, bits = totals.tolist()
    if model.histogram_prior:
        model.fit_codec(hist_t.numpy(), cfg.prior_support)
        bits = -float((hist_t.numpy() * np.log2(model.codec.probabilities)).sum())
    mse = sse / max(count, 1)
    final = {
        "train_distortion": mse,
        "distortion_unit": model.distortion_unit,
        "mean_abs_residual": sae / max(count, 1) if model.distortion_unit == "mse" else None,
        "train_bits_per_element": bits / max(pixels, 1),
    }
    if model.distortion_unit == "mse":
        final["train_psnr"] = float(10 * np.log10(1.0 / mse)) if mse > 0 else float("inf")
    return final


def _train_loop(config: dict[str, Any]) -> None:
    cfg = TrainConfig(**config["train"])
    torch.manual_seed(cfg.seed)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    model = build_training_model(cfg)
    objective = build_objective(cfg.regularizers, lmbda=cfg.lmbda)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    start_epoch, step = _restore(model, optimizer, rank)
    device = ray.train.torch.get_device()
    ddp_model = ray.train.torch.prepare_model(model)
    shard = ray.train.get_dataset_shard("train")

    def batches():
        # Files arrive shuffled (read-time), and patches are mixed again in a local buffer, so a
        # batch never holds crops of one photo only.
        return shard.iter_torch_batches(batch_size=cfg.batch_size, dtypes=torch.float32, device=device,
                                        local_shuffle_buffer_size=cfg.batch_size * 8)

    rates: list[float] = []  # this worker's samples/s per epoch (benchmarks read them)
    # With a step budget, epochs repeat (fresh random crops each time) until the budget is spent.
    epochs = itertools.count(start_epoch) if cfg.steps is not None else range(start_epoch, cfg.epochs)
    last_epoch = start_epoch - 1
    for epoch in epochs:
        if cfg.steps is not None and step >= cfg.steps:
            break
        last_epoch = epoch
        metrics, step = _run_epoch(ddp_model, objective, optimizer, batches(), cfg, step)
        metrics.update(epoch=epoch)
        rates.append(metrics["samples_per_s"])
        with tempfile.TemporaryDirectory() as d:
            ckpt = None
            if rank == 0:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                            "step": step}, os.path.join(d, STATE_FILE))
                ckpt = Checkpoint.from_directory(d)
            ray.train.report(metrics, checkpoint=ckpt)

    final = _fit_and_measure(model, batches(), cfg, world)
    final.update(epoch=last_epoch, resumed_from_epoch=start_epoch, steps=step, final=True,
                 samples_per_s_by_epoch=rates, warm_start=cfg.init is not None)
    with tempfile.TemporaryDirectory() as d:
        ckpt = None
        if rank == 0:
            with open(os.path.join(d, BUNDLE_FILE), "wb") as f:
                f.write(dump_bundle(model, cfg.model, cfg.modality))
            with open(os.path.join(d, "metrics.json"), "w") as f:
                json.dump(final, f)
            ckpt = Checkpoint.from_directory(d)
        ray.train.report(final, checkpoint=ckpt)


def train_model(
    cfg: TrainConfig,
    input_loc: Location,
    storage: Location,
    run_name: str,
    workers: int,
    gpus: float = 0.0,
    cpus_per_worker: float | None = None,
    max_failures: int = 2,
    files: list[InputFile] | None = None,
) -> TrainResult:
    """Train on every file of the collection at ``input_loc`` (``files``, if the caller listed it
    already); checkpoints go under ``storage/run_name``."""
    modality = get_modality(cfg.modality)
    files = files if files is not None else list_collection(input_loc, modality.extensions)
    heldout, train_files = split_heldout(files, input_loc)
    native = cfg.patch_size or build_training_model(cfg).patch_size
    if cfg.init is not None:  # the architecture is the init model's
        cfg = replace(cfg, model=read_bundle(cfg.init)["model"])
    per_epoch = -(-len(train_files) * cfg.patches_per_item // (cfg.batch_size * max(1, workers)))
    cfg = replace(cfg, schedule_steps=cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch)
    data = ray.data.read_binary_files([f.path for f in train_files], filesystem=input_loc.pyarrow_fs(), shuffle="files",
                                      num_cpus=IO_TASK_CPUS, concurrency=io_tasks(workers))
    data = data.map_batches(
        make_patches,
        num_cpus=PATCH_TASK_CPUS,
        compute=ray.data.TaskPoolStrategy(size=io_tasks(workers)),
        batch_format="pyarrow",
        fn_kwargs={"modality": cfg.modality, "size": native, "count": cfg.patches_per_item, "seed": cfg.seed},
    )
    use_gpu = gpus > 0 and torch.cuda.is_available()
    resources = {"CPU": actor_cpus(workers, cpus_per_worker)}
    check_pool_fits(f"training run {run_name!r}", workers, resources["CPU"], beside=PATCH_TASK_CPUS, gang=True)
    if use_gpu:
        resources["GPU"] = gpus
    run_config = RunConfig(
        name=run_name,
        storage_path=storage.path,
        storage_filesystem=None if storage.is_local else storage.pyarrow_fs(),
        failure_config=FailureConfig(max_failures=max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),
    )
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"train": cfg.__dict__},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources),
        torch_config=LoopbackTorchConfig() if loopback_cluster() else None,  # the process group stays on 127.0.0.1
        run_config=run_config,
        datasets={"train": data},
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as d:
        with open(os.path.join(d, BUNDLE_FILE), "rb") as f:
            bundle = f.read()
    bundle = fit_classic(bundle, input_loc, train_files)
    measured = measure_heldout(bundle, input_loc, heldout)
    kept, candidates = "fine-tuned", {}
    if cfg.init is not None and modality.rate_is_quality and measured.get("files"):
        start = fit_classic(cfg.init, input_loc, train_files)
        kept, bundle, measured, candidates = keep_better(modality.gate_metric, bundle, measured, start,
                                                         measure_heldout(start, input_loc, heldout))
    digest = collection_digest(input_loc, files)
    history = list(result.metrics_dataframe.to_dict("records") if result.metrics_dataframe is not None else [])
    return TrainResult(
        bundle=bundle,
        metrics={k: v for k, v in result.metrics.items() if not k.startswith("_")},
        files=len(files),
        input_bytes=sum(f.size for f in files),
        heldout=measured,
        storage=storage.join(run_name).url,
        history=history,
        heldout_files=tuple(heldout),
        content_sha256=digest,
        kept=kept,
        candidates=candidates,
    )


def keep_better(gate: tuple[str, int], tuned: bytes, tuned_heldout: dict[str, Any], start: bytes,
                start_heldout: dict[str, Any]) -> tuple[str, bytes, dict[str, Any], dict[str, Any]]:
    """Fine-tuning never makes a model worse (where its quality is its rate: text): of the
    fine-tuned model and the model it started from (its classic fallback fitted on the same files),
    the one whose held-out figure is better, ``(kept, bundle, heldout, {name: figure})``; a tie
    keeps the fine-tuned one."""
    metric, sign = gate
    figures = {"fine-tuned": tuned_heldout.get(metric), "starting point": start_heldout.get(metric)}
    if figures["starting point"] is not None and figures["fine-tuned"] is not None \
            and sign * figures["starting point"] > sign * figures["fine-tuned"]:
        return "starting point", start, start_heldout, figures
    return "fine-tuned", tuned, tuned_heldout, figures


def fit_classic(bundle: bytes, input_loc: Location, files: list[InputFile], limit: int = 4000,
                max_bytes: int = 1 << 16) -> bytes:
    """Fit the model's classic fallback on the collection (the causal text model's zstd
    dictionary: up to ``limit`` files, their first ``max_bytes`` each); the bundle unchanged for
    models that have none."""
    from cluster.storage import with_retries

    header = read_bundle(bundle)
    model_cls = MODELS[header["model"]]
    if not model_cls.fits_classic:
        return bundle
    model = build_from_bundle(header)
    picks = np.random.default_rng(0).permutation(len(files))[:limit]
    samples = []
    for i in picks:
        try:
            with input_loc.fs.open(files[i].path, "rb") as f:
                samples.append(with_retries(f.read, max_bytes, what="input"))
        except (OSError, FileNotFoundError):
            continue
    model.fit_classic(samples)
    return dump_bundle(model, header["model"], header["modality"], header.get("extra"))


def _sha256_batch(batch: pa.Table) -> pa.Table:
    import hashlib

    return pa.table({"path": batch.column("path"),
                     "sha256": [hashlib.sha256(b).hexdigest() for b in batch.column("bytes").to_pylist()]})


def collection_digest(input_loc: Location, files: list[InputFile]) -> str:
    """sha256 over ``key\tsha256(content)`` of every file, in key order: the same bytes under the
    same keys give the same digest on any storage. One Ray Data pass (files are read in parallel)."""
    import hashlib

    if not files:
        return hashlib.sha256(b"").hexdigest()
    data = ray.data.read_binary_files([f.path for f in files], include_paths=True, filesystem=input_loc.pyarrow_fs(),
                                      num_cpus=IO_TASK_CPUS, concurrency=2)
    rows = data.map_batches(_sha256_batch, batch_format="pyarrow", num_cpus=IO_TASK_CPUS,
                            compute=ray.data.TaskPoolStrategy(size=2)).take_all()
    lines = sorted(f"{input_loc.key(r['path'])}\t{r['sha256']}" for r in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _hash(key: str) -> int:
    import hashlib

    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)


def split_heldout(files: list[InputFile], input_loc: Location) -> tuple[list[InputFile], list[InputFile]]:
    """A deterministic tenth of a collection of 10 files or more, held out to measure the model:
    by the hash of each file's key (its path under the collection's root, so a copy of the
    collection elsewhere holds out the same files), and never none."""
    if len(files) < 10:
        return [], list(files)
    hashes = [_hash(input_loc.key(f.path)) for f in files]
    held = {i for i, h in enumerate(hashes) if h % 10 == 0} or {min(range(len(files)), key=hashes.__getitem__)}
    # one pass: a membership test per file in a list would be quadratic in the collection
    return [f for i, f in enumerate(files) if i in held], [f for i, f in enumerate(files) if i not in held]


def measure_heldout(bundle: bytes, input_loc: Location, files: list, limit: int = 64,
                    max_bytes: int = 1 << 20) -> dict[str, Any]:
    """Compress and decode up to ``limit`` held-out files of at most ``max_bytes`` together (one
    file at least: the causal text model codes a few KB/s, and 64 dictionary pieces of 64 KB took
    7 minutes a candidate), as a compress job would: the mean quality, and the rate
    (``bits_per_*``) over all their bytes together, each file weighted by its size (a plain mean
    let a 30-byte ``__init__.py`` at 16 bits/byte outweigh a 30 KB module)."""
    from aecore import load_bundle
    from cluster.storage import with_retries

    if not files:
        return {"files": 0}
    compressor = load_bundle(bundle)
    samples, sizes, raw = [], [], []
    for f in files[:limit]:
        if sizes and sum(sizes) + f.size > max_bytes:
            break
        try:
            data = with_retries(input_loc.fs.cat_file, f.path, what="input")
            samples.append(compressor.modality.load(data))
        except UnreadableInput:
            continue
        sizes.append(len(data))
        raw.append(data)
    encoded = compressor.encode(samples, [True] * len(samples)) if samples else []
    out: dict[str, Any] = {"files": len(encoded)}
    for k in sorted({k for e in encoded for k in e.quality}):  # a figure some files lack (MS-SSIM of a small image)
        values, weights = zip(*[(e.quality[k], size) for e, size in zip(encoded, sizes) if k in e.quality])
        out[k] = float(np.average(values, weights=weights if k.startswith("bits_per") else None))
    primer = compressor.model.primer()
    if primer is not None and raw:  # what an archive's aec-cm codes the same files in (the model's own rate above)
        from aecore.archive.cm2 import cm2_compress

        out["bits_per_byte_primed"] = 8.0 * sum(len(cm2_compress(d, primer) or d) for d in raw) / sum(sizes)
    return out
