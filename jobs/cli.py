"""The ``aec`` command line: train, compress, inspect and decode on the embedded default
(a local Ray instance) or on the Ray cluster at ``RAY_ADDRESS``."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aecore.bundle import bundle_sha256
from aecore.registry import MODELS
from jobs.catalog import JobCatalog, JobRun
from jobs.models import load_model, starting_point
from jobs.registry import ModelRegistry
from jobs.spec import CompressJobSpec, SpecError, TrainJobSpec, load_spec
from jobs.ui import console, err_console, fmt as _fmt, kv_table as _kv_table, user_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="aec: compress image, audio and text archives into learned latents with Ray, "
                       "query them with Arrow tools.")

SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a spec key: --set epochs=3 (repeatable).")]


def _ray(verbose: bool) -> None:
    from cluster.runtime import ensure_ray

    ensure_ray(log_to_driver=verbose)


@app.command()
@user_errors
def train(
    spec: Annotated[Path, typer.Argument(help="A train job spec (YAML).")],
    set_: SetOption = None,
    verbose: Annotated[bool, typer.Option(help="Show Ray worker logs.")] = False,
) -> None:
    """Train an autoencoder on a collection with Ray Train and register a new model version.

    Example: aec train jobs/specs/photos-train.yaml --set epochs=3
    """
    from cluster.storage import Location, list_collection
    from cluster.train import TrainConfig, train_model
    from aecore import get_modality

    job = load_spec(spec, set_)
    if not isinstance(job, TrainJobSpec):
        raise SpecError(f"spec {spec}: kind is {job.kind!r}; `aec train` runs kind: train specs")
    modality = get_modality(job.modality)
    input_loc = Location.of(job.input, job.storage_options)
    files = list_collection(input_loc, modality.extensions)
    registry = ModelRegistry(job.registry, job.storage_options)
    start = starting_point(job, registry)
    arch = MODELS[start.architecture]
    _ray(verbose)
    cfg = TrainConfig(
        modality=job.modality, model=start.architecture, preset=start.preset,
        epochs=job.epochs, batch_size=job.batch_size,
        learning_rate=job.learning_rate if job.learning_rate is not None else arch.default_learning_rate,
        regularizers=job.regularizer_weights(), lmbda=job.lmbda if job.lmbda is not None else arch.default_lmbda,
        patches_per_item=job.patches_per_item, seed=job.seed, steps=job.steps, init=start.bundle,
        patch_size=job.patch_size,
    )
    run_name = f"{job.model}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    budget = f"{job.steps} steps" if job.steps else f"{job.epochs} epochs"
    origin = f"from {start.ref}" if start.ref else f"from scratch ({cfg.model}/{cfg.preset})"
    console.print(f"training [bold]{job.model}[/] {origin} on {len(files)} files from "
                  f"{job.input} with {job.workers} Ray Train worker(s), {budget}", highlight=False)
    started = time.perf_counter()
    with JobRun(JobCatalog(job.registry, job.storage_options), "train", job.model_dump()) as run:
        result = train_model(cfg, input_loc, registry.loc.join("_runs"), run_name, workers=job.workers,
                             gpus=job.gpus, cpus_per_worker=job.cpus_per_worker, files=files)
        decision = _promotion_gate(job, registry, result, input_loc)
        mv = registry.register(job.model, result.bundle, {
            "spec": job.model_dump(exclude={"storage_options"}),
            "architecture": cfg.model,
            "preset": cfg.preset,
            "init": start.ref,
            "modality": job.modality,
            "metrics": result.metrics,
            "heldout": result.heldout,
            "lineage": {"input": job.input, "files": result.files, "input_bytes": result.input_bytes,
                        "content_sha256": result.content_sha256,
                        "listing_sha256": hashlib.sha256("\n".join(f"{f.path}\t{f.size}" for f in files).encode()).hexdigest()},
            "checkpoints": result.storage,
            "train_seconds": time.perf_counter() - started,
            "promotion": decision.as_dict(),
            "job_id": run.job_id,
        })
        if decision.promote:
            registry.promote(mv.name, mv.version)
        run.finish(model_version=mv.ref, files=result.files, heldout=result.heldout,
                   promotion={"promoted": decision.promote, "reason": decision.reason})
    console.print(_kv_table(f"registered {mv.ref}", {
        "model": mv.ref, "registry": registry.loc.url, "files": result.files,
        "started from": start.ref or "scratch", "epochs": job.epochs, "steps": result.metrics.get("steps"),
        "train PSNR (dB)": result.metrics.get("train_psnr"),
        "regularizers": cfg.regularizers, "lmbda": cfg.lmbda,
        "held-out quality": {k: v for k, v in result.heldout.items()},
        "train bits/pixel (ideal)": result.metrics.get("train_bits_per_element"),
        "production": f"v{mv.version} (promoted)" if decision.promote else f"unchanged",
        "seconds": time.perf_counter() - started,
    }))
    console.print(f"promotion gate: {decision.reason}", highlight=False)


def _promotion_gate(job: TrainJobSpec, registry: ModelRegistry, result: Any, input_loc: Any) -> Any:
    from cluster.train import measure_heldout
    from jobs.promotion import decide

    production = None
    version = registry.aliases(job.model).get("production")
    if version is not None:
        _, bundle = registry.load(f"{job.model}@{version}")
        production = (version, bundle)
    return decide(job.promote, job.modality, result.heldout, production, job.promotion_tolerance,
                  lambda bundle: measure_heldout(bundle, input_loc, list(result.heldout_files)))


@app.command()
@user_errors
def compress(
    spec: Annotated[Path, typer.Argument(help="A compress job spec (YAML).")],
    set_: SetOption = None,
    overwrite: Annotated[bool, typer.Option(help="Delete a dataset already at the output before starting.")] = False,
    fail_on_error: Annotated[bool, typer.Option(help="Exit 1 if any input could not be encoded.")] = False,
    verbose: Annotated[bool, typer.Option(help="Show Ray worker logs.")] = False,
) -> None:
    """Encode a collection into a Parquet latents dataset with a Ray Data actor pool.

    Re-running a job resumes it: inputs already committed to the output are skipped.
    Unreadable inputs become rows of OUTPUT/_aec/errors.jsonl; the job still exits 0
    unless --fail-on-error or the spec's max_error_rate says otherwise.

    Example: aec compress jobs/specs/photos-compress.yaml --set output=/tmp/latents
    """
    from cluster.compress import CompressRequest, check_locations, compress_collection
    from cluster.storage import Location, list_collection
    from aecore import get_modality, read_bundle

    job = load_spec(spec, set_)
    if not isinstance(job, CompressJobSpec):
        raise SpecError(f"spec {spec}: kind is {job.kind!r}; `aec compress` runs kind: compress specs")
    input_loc = Location.of(job.input, job.storage_options)
    output = Location.of(job.output, job.storage_options)
    check_locations(input_loc, output)
    registry = ModelRegistry(job.registry, job.storage_options)
    mv, bundle = load_model(job.model, registry)
    trained_for = read_bundle(bundle)["modality"]
    if trained_for != job.modality:
        raise SpecError(f"spec {spec}: model {mv.ref} was trained for {trained_for!r}, not {job.modality!r}; "
                        f"fix `modality` or `model`")
    files = list_collection(input_loc, get_modality(job.modality).extensions)
    _check_writable(output)
    _ray(verbose)
    console.print(f"compressing {job.input} with [bold]{mv.ref}[/] on {job.workers} encoder actor(s)")
    catalog = JobCatalog(job.registry, job.storage_options)
    with JobRun(catalog, "compress", job.model_dump()) as run, \
            Progress(TextColumn("committed"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=console, transient=True) as bar:
        task = bar.add_task("compress", total=None)
        summary = compress_collection(CompressRequest(
            bundle=bundle, model_name=mv.name, model_version=mv.version, input=input_loc, output=output,
            workers=job.workers, gpus=job.gpus, batch_size=job.batch_size, cpus_per_worker=job.cpus_per_worker,
            overwrite=overwrite, quality_every=job.quality_every, max_file_bytes=job.max_file_bytes,
            commit_every=job.commit_every, commit_seconds=job.commit_seconds, lossless=job.lossless,
            rate_point=job.rate_point if job.rate_point is not None else mv.info.get("rate_point"),
            metadata={"job": job.name, "registry": registry.loc.url, "job_id": run.job_id}, files=tuple(files),
            job_name=job.name,
        ), progress=lambda done, total: bar.update(task, completed=done, total=total))
        counts = {k: summary[k] for k in ("inputs", "skipped", "encoded", "rows", "errors", "input_bytes",
                                          "payload_bytes", "ratio", "quality")}
        run.finish(model_version=mv.ref, **counts)
        catalog.record_dataset(summary["output"], modality=job.modality, model=mv.ref, last_job=run.job_id,
                               **{k: counts[k] for k in ("rows", "errors", "input_bytes", "payload_bytes", "ratio")})
        errors, inputs = summary["errors"], summary["inputs"]
        rate = errors / inputs if inputs else 0.0
        failed = (fail_on_error and errors) or (job.max_error_rate is not None and rate > job.max_error_rate)
        if failed:
            run.finish(status="FAILED", message=f"{errors} of {inputs} inputs could not be encoded")
    rows = {
        "output": summary["output"], "inputs": inputs, "skipped (already committed)": summary["skipped"],
        "encoded now": summary["encoded"], "rows in dataset": summary["rows"], "errors": errors,
        "input bytes": summary["input_bytes"], "payload bytes": summary["payload_bytes"],
        "parquet bytes": summary["parquet_bytes"], "ratio (input/payload)": summary["ratio"],
        "quality (sample)": summary["quality"], "seconds": summary["seconds"],
        "encoded rows/s": summary["encoded"] / summary["seconds"] if summary["seconds"] else None,
    }
    status = f"completed with {errors} errors" if errors else "completed"
    console.print(_kv_table(f"compress job {job.name!r} {status}", rows))
    if errors:
        console.print(f"errors: {output.join('_aec', 'errors.jsonl').url}", highlight=False)
    if summary.get("report"):
        console.print(f"report: {summary['report']}", highlight=False)
    if failed:
        limit = "--fail-on-error" if fail_on_error else f"max_error_rate={job.max_error_rate}"
        err_console.print(f"[bold red]error:[/] compress job {job.name!r} failed: {errors} of {inputs} inputs "
                          f"could not be encoded ({limit}); committed rows are kept, see the errors file",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _check_writable(output: "Location") -> None:  # noqa: F821
    """Fail before any work if the output cannot be written (one line, no secrets)."""
    import posixpath
    import uuid

    from cluster.storage import StorageError, storage_error, with_retries

    probe = posixpath.join(output.path, "_aec", f".probe-{uuid.uuid4().hex[:8]}")
    try:
        with_retries(output.fs.makedirs, posixpath.dirname(probe), exist_ok=True, what=f"output {output.url!r}")
        with_retries(output.fs.pipe_file, probe, b"", what=f"output {output.url!r}")
        with_retries(output.fs.rm, probe, what=f"output {output.url!r}")
    except StorageError:
        raise
    except (PermissionError, NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else "a parent of it is a file"
        raise StorageError(f"output {output.url!r} is not writable: {why}; "
                           "choose a writable output or fix its permissions") from None
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, output.url, "output", output) from None


@app.command()
@user_errors
def inspect(dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")]) -> None:
    """Summarize a latents dataset: rows, model, bytes in and out, ratio, quality.

    Example: aec inspect demo-output/latents
    """
    from cluster.dataset import open_dataset
    from cluster.storage import Location

    ds = open_dataset(Location.of(dataset))
    console.print(_kv_table(f"dataset {dataset}", ds.summary()))


@app.command()
@user_errors
def decode(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to restore the files into.")],
    registry: Annotated[str | None, typer.Option(
        help="Model registry (default: the one the dataset records, if it is a local path; a URL there is "
             "never fetched unless you pass it here).")] = None,
    originals: Annotated[str | None, typer.Option(
        help="The collection's root: measure quality against the originals under it (by each row's key).")] = None,
) -> None:
    """Restore every row of a dataset to a file of its original size; with --originals, report PSNR.

    Rows that cannot be restored are listed and skipped; the exit code is 1 if any failed.

    Example: aec decode demo-output/latents --out demo-output/restored --originals demo-output/photos
    """
    from aecore import load_bundle
    from cluster.dataset import open_dataset
    from cluster.decode import decode_dataset
    from cluster.storage import Location

    ds = open_dataset(Location.of(dataset))
    meta = ds.metadata
    mv, bundle = load_model(meta["model_ref"], ModelRegistry(decode_registry(meta, registry)))
    if meta.get("bundle_sha256") and bundle_sha256(bundle) != meta["bundle_sha256"]:
        raise SpecError(f"{mv.ref} in this registry is not the bundle {dataset} was encoded with (sha256 "
                        f"{meta['bundle_sha256'][:12]}…); pass --registry with the registry that encoded it")
    compressor = load_bundle(bundle)
    total = ds.count_rows()
    with Progress(TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("decode", total=total)
        summary = decode_dataset(ds, compressor, out, originals=Location.of(originals) if originals else None,
                                 progress=lambda n: bar.advance(task, n))
    fields = {"out": summary["out"], "rows restored": summary["rows"], "rows failed": summary["failed"]}
    if originals:
        fields.update({"compared with originals": summary["compared"],
                       "originals unreachable": summary["originals_unreachable"], "quality": summary["quality"]})
    console.print(_kv_table(f"restored {summary['rows']} files with {mv.ref}", fields))
    if summary["failures"]:
        for f in summary["failures"][:20]:
            err_console.print(f"failed: {f['uri']} ({f['id']}): {f['reason']}", highlight=False, soft_wrap=True)
        more = len(summary["failures"]) - 20
        err_console.print(f"[bold red]error:[/] {summary['failed']} of {summary['rows'] + summary['failed']} rows could "
                          f"not be restored{f' ({more} more not shown)' if more > 0 else ''}; the others are in {out}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def decode_registry(metadata: dict[str, Any], given: str | None) -> str:
    """The registry decode loads from: the one the user gives; else the dataset's, only if it is
    a local path (a dataset is untrusted: a URL in it is never fetched); else the default."""
    if given:
        return given
    recorded = metadata.get("registry") or ""
    if recorded and "://" not in recorded:
        return recorded
    return TrainJobSpec.model_fields["registry"].default


@app.command()
@user_errors
def query(
    dataset: Annotated[str, typer.Argument(help="A local dataset folder written by `aec compress`.")],
    sql: Annotated[str, typer.Argument(help="SQL over the view `latents` (one row per encoded file).")],
) -> None:
    """Run DuckDB SQL over a dataset's Parquet files, exactly as any DuckDB user would.

    Example: aec query demo-output/latents "SELECT modality, count(*) FROM latents GROUP BY 1"
    """
    try:
        import duckdb
    except ImportError:
        raise SpecError("`aec query` needs DuckDB: pip install 'aec[readers]'") from None
    glob = f"{dataset.rstrip('/')}/**/*.parquet"
    con = duckdb.connect()
    con.execute(f"CREATE VIEW latents AS SELECT * FROM read_parquet('{glob.replace(chr(39), chr(39) * 2)}')")
    try:
        rel = con.sql(sql)
    except duckdb.Error as exc:
        raise SpecError(f"query failed: {str(exc).splitlines()[0]}") from None
    table = Table(*rel.columns, title=f"read_parquet('{glob}')", title_justify="left")
    for row in rel.fetchall():
        table.add_row(*(_fmt(v) for v in row))
    console.print(table)


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Argument(help="Folder to write the collection into.")],
    count: Annotated[int, typer.Option(help="How many files.")] = 400,
    seed: Annotated[int, typer.Option(help="Random seed of the crop positions.")] = 0,
    modality: Annotated[str, typer.Option(help="image: photo crops from scikit-image's samples; "
                                                 "audio: generated clips; text: source files of Python's standard library.")] = "image",
) -> None:
    """Make a real collection offline from files that installed packages ship.

    Example: aec sample-data demo-output/photos --count 400
    """
    from jobs.sample_data import make_audio_collection, make_photo_collection, make_text_collection

    makers = {"image": make_photo_collection, "audio": make_audio_collection, "text": make_text_collection}
    if modality not in makers:
        raise typer.BadParameter(f"no sample collection for {modality!r}; use one of: {', '.join(makers)}")
    paths = makers[modality](out, count, seed=seed)
    console.print(f"wrote {len(paths)} files to {out} ({sum(p.stat().st_size for p in paths):,} bytes)")


@app.command()
@user_errors
def validate(spec: Annotated[Path, typer.Argument(help="A job spec (YAML).")], set_: SetOption = None) -> None:
    """Check a spec and print it with every default filled in.

    Example: aec validate jobs/specs/photos-train.yaml --set epochs=3
    """
    import yaml

    job = load_spec(spec, set_)
    console.print(yaml.safe_dump(job.model_dump(), sort_keys=False), highlight=False)


from jobs import cli_ops  # noqa: E402  - the cluster commands, on the same app

cli_ops.register(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
