"""The jobs themselves: what a train or compress spec does, whoever starts it.

``aec train`` / ``aec compress`` call :func:`run_train` / :func:`run_compress` in the user's
process (on the embedded default or a cluster at ``RAY_ADDRESS``); a job submitted through the
Ray Jobs API runs this module's entrypoint on the cluster::

    python -m jobs.run train spec.yaml
    python -m jobs.run compress spec.yaml

Each returns an outcome (what was registered or written, and the figures); printing it is the
caller's business (:func:`show`).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aecore.archive.route import AUTO
from aecore.registry import MODELS
from cluster.clock import STAMP, utc_text
from jobs.catalog import JobCatalog, JobRun
from jobs.models import load_model, starting_point
from jobs.registry import ModelRegistry
from jobs.spec import CompressJobSpec, SpecError, TrainJobSpec, load_spec
from jobs.ui import console, err_console, error_line, kv_table, user_errors

if TYPE_CHECKING:
    from cluster.compress import CompressRequest
    from cluster.train import TrainConfig

__all__ = ["CompressOutcome", "TrainOutcome", "compress_request", "join_ray", "main", "run_compress", "run_train", "show",
           "train_config"]

Announce = Callable[[str], None]


def _announce(line: str) -> None:
    console.print(line, highlight=False)


def join_ray(verbose: bool) -> None:
    """Join or start Ray. Unless ``verbose``, Ray Data's own progress lines stay in its log file
    (``/tmp/ray/session_*/logs/ray-data``) and the CLI shows one progress bar."""
    import logging

    import ray.data

    from cluster.runtime import ensure_ray

    ensure_ray(log_to_driver=verbose)
    if not verbose:
        ray.data.DataContext.get_current().enable_progress_bars = False
        for handler in logging.getLogger("ray.data").handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                # the console one; its file handler keeps everything
                handler.setLevel(logging.ERROR)


@dataclass
class TrainOutcome:
    """A finished train job: the version it registered and whether it went to production."""

    title: str
    rows: dict[str, Any]
    gate: str
    failed: str | None = None


@dataclass
class CompressOutcome:
    """A finished compress job: its summary; ``failed`` says why the job counts as failed (too
    many inputs could not be encoded) though its committed rows are kept."""

    title: str
    rows: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    failed: str | None = None


def run_train(job: TrainJobSpec, *, verbose: bool = False, announce: Announce = _announce) -> TrainOutcome:
    """Train on the spec's collection with Ray Train, run the promotion gate, register the new
    version (and promote it if the gate says so)."""
    from aecore import get_modality
    from cluster.storage import Location, list_collection
    from cluster.train import train_model

    modality = get_modality(job.modality)
    input_loc = Location.of(job.input, job.storage_options)
    files = list_collection(input_loc, modality.extensions)
    registry = ModelRegistry(job.registry, job.storage_options)
    start = starting_point(job, registry)
    join_ray(verbose)
    cfg = train_config(job, start.architecture, start.preset, start.bundle)
    run_name = f"{job.model}-{utc_text(fmt=STAMP)}"
    budget = f"{job.steps} steps" if job.steps else f"{job.epochs} epochs"
    origin = f"from {start.ref}" if start.ref else f"from scratch ({cfg.model}/{cfg.preset})"
    announce(f"training {job.model} {origin} on {len(files)} files from "
             f"{job.input} with {job.workers} Ray Train worker(s), {budget}")
    started = time.perf_counter()
    with JobRun(JobCatalog(job.registry, job.storage_options), "train", job.model_dump()) as run:
        result = train_model(cfg, input_loc, registry.loc.join("_runs"), run_name, workers=job.workers,
                             gpus=job.gpus, cpus_per_worker=job.cpus_per_worker, files=files)
        decision = _promotion_gate(job, registry, result, input_loc)
        listing = "\n".join(f"{f.path}\t{f.size}" for f in files)
        mv = registry.register(job.model, result.bundle, {
            "spec": job.model_dump(exclude={"storage_options"}),
            "architecture": cfg.model,
            "preset": cfg.preset,
            "init": start.ref,
            "modality": job.modality,
            "metrics": result.metrics,
            "heldout": result.heldout,
            "kept": {"model": result.kept, "heldout": result.candidates} if result.candidates else None,
            "lineage": {"input": job.input, "files": result.files, "input_bytes": result.input_bytes,
                        "content_sha256": result.content_sha256,
                        "listing_sha256": hashlib.sha256(listing.encode()).hexdigest()},
            "checkpoints": result.storage,
            "train_seconds": time.perf_counter() - started,
            "promotion": decision.as_dict(),
            "job_id": run.job_id,
        })
        if decision.promote:
            registry.promote(mv.name, mv.version)
        run.finish(model_version=mv.ref, files=result.files, heldout=result.heldout,
                   promotion={"promoted": decision.promote, "reason": decision.reason})
    return TrainOutcome(title=f"registered {mv.ref}", gate=f"promotion gate: {decision.reason}", rows={
        "model": mv.ref, "registry": registry.loc.url, "files": result.files,
        "started from": start.ref or "scratch", "epochs": job.epochs, "steps": result.metrics.get("steps"),
        "train PSNR (dB)": result.metrics.get("train_psnr"),
        "regularizers": cfg.regularizers, "lmbda": cfg.lmbda,
        "held-out quality": dict(result.heldout),
        **({"kept": _kept_line(result.kept, result.candidates, modality.gate_metric[0])} if result.candidates else {}),
        "train bits/pixel (ideal)": result.metrics.get("train_bits_per_element"),
        "production": f"v{mv.version} (promoted)" if decision.promote else "unchanged",
        "seconds": time.perf_counter() - started,
    })


def _kept_line(kept: str, figures: dict, metric: str) -> str:
    """What a warm-started text model's registered version is: the fine-tuned weights, or the
    starting point's where it coded the held-out tenth better."""
    shown = ", ".join(f"{name} {v:.4f}" for name, v in figures.items() if v is not None)
    return f"{kept} (held-out {metric}: {shown})"


def train_config(job: TrainJobSpec, architecture: str, preset: str | None, init: bytes | None = None) -> TrainConfig:
    """The training configuration a train spec asks for (the architecture's own defaults where
    the spec leaves ``learning_rate`` / ``lmbda`` unset)."""
    from cluster.train import TrainConfig

    arch = MODELS[architecture]
    return TrainConfig(
        modality=job.modality, model=architecture, preset=preset, epochs=job.epochs, batch_size=job.batch_size,
        learning_rate=job.learning_rate if job.learning_rate is not None else arch.default_learning_rate,
        regularizers=job.regularizer_weights(), lmbda=job.lmbda if job.lmbda is not None else arch.default_lmbda,
        patches_per_item=job.patches_per_item, seed=job.seed, steps=job.steps, init=init, patch_size=job.patch_size,
    )


def archive_models(job: CompressJobSpec, registry: ModelRegistry, overwrite: bool = False) -> tuple[Any, ...]:
    """The learned models that join the classic codecs in an exact archive, one per modality:
    the spec's ``model`` (for its own modality), its ``models`` map, and each remaining
    modality's zoo model where its entry joins archives at the job's effort (every zoo model at
    ``max``; ``text-cm``, whose primed coder is fast, at ``default`` too) or ``lossless: false``
    needs it (the modalities coded lossy). A run appending to a table keeps the zoo models the
    table records — none added, none swapped for a newer installation's default: the append would
    not match the rows it holds."""
    from aecore import get_modality, read_bundle
    from aecore.registry import MODALITIES
    from aecore.zoo import default_entry
    from cluster.encode import LearnedModel

    recorded = None if overwrite else _recorded_zoo_models(job)
    refs: dict[str, str] = {}
    if job.model is not None:
        mv, bundle = load_model(job.model, registry)
        refs[read_bundle(bundle)["modality"]] = job.model
    refs.update(job.models)
    for modality in MODALITIES:
        entry = default_entry(modality)
        if entry is None or modality in refs:
            continue
        # a lossy archive's photos and sounds need their model's quality as the target the
        # classic lossy codecs must reach
        if job.effort in entry.archive_efforts or (job.lossless is False and get_modality(modality).lossy):
            if recorded is None:
                refs[modality] = f"zoo:{entry.name}"
            elif modality in recorded:
                refs[modality] = recorded[modality]
    models = []
    for modality, ref in sorted(refs.items()):
        mv, bundle = load_model(ref, registry)
        trained_for = read_bundle(bundle)["modality"]
        if trained_for != modality:
            raise SpecError(f"spec {job.name!r}: models.{modality} is {mv.ref}, a {trained_for} model; fix `models`")
        models.append(LearnedModel(modality, mv.name, mv.version, bundle))
    return tuple(models)


def _recorded_zoo_models(job: CompressJobSpec) -> dict[str, str] | None:
    """``modality -> zoo:NAME@VERSION`` of the zoo models the output's table records; None where
    there is no table yet."""
    from cluster.storage import Location
    from cluster.table import load_table, read_properties

    table = load_table(Location.of(job.output, job.storage_options))
    if table is None:
        return None
    models = read_properties(table).get("models") or {}
    return {m: v["ref"] for m, v in models.items() if isinstance(v, dict) and str(v.get("ref", "")).startswith("zoo:")}


def compress_request(job: CompressJobSpec, bundle: bytes | None, name: str, version: int, *, overwrite: bool = False,
                     rate_point: float | None = None, metadata: dict[str, Any] | None = None,
                     files: tuple[Any, ...] | None = None, models: tuple[Any, ...] = ()) -> CompressRequest:
    """The request a compress spec makes of ``cluster.compress``."""
    from cluster.compress import CompressRequest
    from cluster.storage import Location

    return CompressRequest(
        bundle=bundle, model_name=name, model_version=version,
        input=Location.of(job.input, job.storage_options), output=Location.of(job.output, job.storage_options),
        workers=job.workers, gpus=job.gpus, batch_size=job.batch_size, cpus_per_worker=job.cpus_per_worker,
        overwrite=overwrite, quality_every=job.quality_every, max_file_bytes=job.max_file_bytes,
        commit_every=job.commit_every, commit_seconds=job.commit_seconds, lossless=job.lossless,
        rate_point=job.rate_point if job.rate_point is not None else rate_point,
        metadata=metadata, files=files, job_name=job.name, modality=job.modality, effort=job.effort, models=models,
    )


def _promotion_gate(job: TrainJobSpec, registry: ModelRegistry, result: Any, input_loc: Any) -> Any:
    from cluster.train import measure_heldout
    from jobs.promotion import decide

    production = best = None
    version = registry.aliases(job.model).get("production")
    if version is not None:
        _, bundle = registry.load(f"{job.model}@{version}")
        production = (version, bundle)
        former = best_former_production(registry, job.model, job.modality, exclude=version)
        if former is not None:
            best = (former, registry.load(f"{job.model}@{former}")[1])
    return decide(job.promote, job.modality, result.heldout, production, job.promotion_tolerance,
                  lambda bundle: measure_heldout(bundle, input_loc, list(result.heldout_files)), best_former=best)


def best_former_production(registry: ModelRegistry, name: str, modality: str, *, exclude: int) -> int | None:
    """The version with the best recorded held-out figure among those the gate once promoted (the
    first version included); measured again on today's held-out files before it sets the bar."""
    from aecore import get_modality

    metric, direction = get_modality(modality).gate_metric
    scored = []
    for v in registry.versions(name):
        if v == exclude:
            continue
        info = registry.resolve(f"{name}@{v}").info
        promotion, figure = info.get("promotion") or {}, (info.get("heldout") or {}).get(metric)
        if promotion.get("promote") and info.get("modality") == modality and isinstance(figure, (int, float)):
            scored.append((direction * figure, v))
    return max(scored)[1] if scored else None


def run_compress(job: CompressJobSpec, *, overwrite: bool = False, fail_on_error: bool = False, verbose: bool = False,
                 progress: Callable[[int, int | None], None] | None = None,
                 announce: Announce = _announce) -> CompressOutcome:
    """Encode the spec's collection into its output with a Ray Data actor pool (resuming: inputs
    already committed are skipped), and apply the spec's error-rate policy."""
    from aecore import get_modality, read_bundle
    from cluster.compress import check_locations, compress_collection
    from cluster.storage import Location, check_writable, list_collection, list_tree
    from cluster.table import META_DIR

    input_loc = Location.of(job.input, job.storage_options)
    output = Location.of(job.output, job.storage_options)
    check_locations(input_loc, output)
    registry = ModelRegistry(job.registry, job.storage_options)
    mv, bundle = load_model(job.model, registry) if job.model is not None else (None, None)
    if mv is not None and job.modality != AUTO:
        trained_for = read_bundle(bundle)["modality"]
        if trained_for != job.modality:
            raise SpecError(f"spec {job.name!r}: model {mv.ref} was trained for {trained_for!r}, not {job.modality!r}; "
                            f"fix `modality` or `model`")
    archive = job.modality == AUTO or bool(job.lossless)
    models = archive_models(job, registry, overwrite) if archive else ()
    files = list_tree(input_loc) if job.modality == AUTO else list_collection(input_loc,
                                                                             get_modality(job.modality).extensions)
    check_writable(output, META_DIR)
    join_ray(verbose)
    model_ref = mv.ref if mv is not None else "classic codecs only"
    if archive:
        learned = ", ".join(f"{m.modality}: {m.name}@{m.version}" for m in models) or "none"
        how = "exactly" if job.lossless is not False else "(photos and sounds lossy, the rest exactly)"
        announce(f"archiving {job.input} {how}, each file by the best codec (effort {job.effort}; models: {learned}) "
                 f"on {job.workers} encoder actor(s)")
    else:
        announce(f"compressing {job.input} with {model_ref} on {job.workers} encoder actor(s)")
    catalog = JobCatalog(job.registry, job.storage_options)
    with JobRun(catalog, "compress", job.model_dump()) as run:
        summary = compress_collection(compress_request(
            job, bundle, mv.name if mv else "", mv.version if mv else 0, overwrite=overwrite,
            rate_point=mv.info.get("rate_point") if mv else None,
            metadata={"job": job.name, "registry": registry.loc.url, "job_id": run.job_id}, files=tuple(files),
            models=models,
        ), progress=progress)
        counts = {k: summary[k] for k in ("inputs", "skipped", "encoded", "rows", "errors", "input_bytes",
                                          "payload_bytes", "ratio", "quality")}
        run.finish(model_version=model_ref, **counts)
        catalog.record_dataset(summary["output"], modality=job.modality, model=model_ref, last_job=run.job_id,
                               **{k: counts[k] for k in ("rows", "errors", "input_bytes", "payload_bytes", "ratio")})
        errors, inputs = summary["errors"], summary["inputs"]
        rate = errors / inputs if inputs else 0.0
        failed = None
        if (fail_on_error and errors) or (job.max_error_rate is not None and rate > job.max_error_rate):
            limit = "--fail-on-error" if fail_on_error else f"max_error_rate={job.max_error_rate}"
            failed = (f"compress job {job.name!r} failed: {errors} of {inputs} inputs could not be encoded ({limit}); "
                      "committed rows are kept, see the errors file")
            run.finish(status="FAILED", message=f"{errors} of {inputs} inputs could not be encoded")
    notes = []
    if errors:
        notes.append(f"errors: aec inspect {output.url} --errors")
    if summary.get("report"):
        notes.append(f"report: {summary['report']}")
    status = f"completed with {errors} errors" if errors else "completed"
    return CompressOutcome(title=f"compress job {job.name!r} {status}", notes=notes, failed=failed, rows={
        "output": summary["output"], "inputs": inputs, "skipped (already committed)": summary["skipped"],
        "encoded now": summary["encoded"], "rows in dataset": summary["rows"], "errors": errors,
        "input bytes": summary["input_bytes"], "payload bytes": summary["payload_bytes"],
        "parquet bytes": summary["parquet_bytes"], "bytes on disk": summary["stored_bytes"],
        "ratio (input / on disk)": summary["ratio"],
        "quality (sample)": summary["quality"], "seconds": summary["seconds"],
        "encoded rows/s": summary["encoded"] / summary["seconds"] if summary["seconds"] else None,
    })


def show(outcome: TrainOutcome | CompressOutcome) -> int:
    """Print an outcome; the exit code it calls for (1: the job counts as failed)."""
    console.print(kv_table(outcome.title, outcome.rows))
    for line in [outcome.gate] if isinstance(outcome, TrainOutcome) else outcome.notes:
        console.print(line, highlight=False)
    if outcome.failed:
        err_console.print(error_line(outcome.failed), highlight=False, soft_wrap=True)
        return 1
    return 0


@user_errors
def _run(kind: str, spec: str, overrides: list[str]) -> int:
    job = load_spec(spec, overrides)
    if job.kind != kind:
        raise SpecError(f"spec {spec}: kind is {job.kind!r}, not {kind!r}")
    outcome = run_train(job) if isinstance(job, TrainJobSpec) else run_compress(job)
    return show(outcome)


def main(argv: list[str] | None = None) -> None:
    """The entrypoint of a job submitted to a cluster: ``python -m jobs.run KIND SPEC``."""
    parser = argparse.ArgumentParser(prog="python -m jobs.run", description="Run one aec job spec (the cluster entrypoint).")
    parser.add_argument("kind", choices=["train", "compress"])
    parser.add_argument("spec")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="Override a spec key: key=value.")
    args = parser.parse_args(argv)
    import typer

    try:
        sys.exit(_run(args.kind, args.spec, args.overrides))
    except typer.Exit as exc:  # a user error, already printed in one line
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
