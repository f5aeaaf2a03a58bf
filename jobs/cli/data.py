"""Commands on collections and datasets: train, compress, inspect, decode, query, sample-data, validate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aecore.errors import UserError
from jobs.cli.options import (
    SetOption,
)
from jobs.models import dataset_models
from jobs.spec import CompressJobSpec, SpecError, TrainJobSpec, load_spec
from jobs.ui import console, err_console, error_line, fmt, kv_table, user_errors

app = typer.Typer()


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
    from jobs.run import run_train, show

    job = load_spec(spec, set_)
    if not isinstance(job, TrainJobSpec):
        raise SpecError(f"spec {spec}: kind is {job.kind!r}; `aec train` runs kind: train specs")
    if code := show(run_train(job, verbose=verbose)):
        raise typer.Exit(code)


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
    Unreadable inputs become error rows (`aec inspect OUTPUT --errors`); the job still exits 0
    unless --fail-on-error or the spec's max_error_rate says otherwise.

    Example: aec compress jobs/specs/photos-compress.yaml --set output=/tmp/latents
    """
    from jobs.run import run_compress, show

    job = load_spec(spec, set_)
    if not isinstance(job, CompressJobSpec):
        raise SpecError(f"spec {spec}: kind is {job.kind!r}; `aec compress` runs kind: compress specs")
    with Progress(TextColumn("files committed"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                  TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("compress", total=None)
        outcome = run_compress(job, overwrite=overwrite, fail_on_error=fail_on_error, verbose=verbose,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    if code := show(outcome):
        raise typer.Exit(code)


@app.command()
@user_errors
def inspect(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    version: Annotated[int | None, typer.Option(help="Read this table version (default: the latest).")] = None,
    history: Annotated[bool, typer.Option("--history", help="List the compress runs and the versions they committed.")] = False,
    errors: Annotated[bool, typer.Option("--errors", help="List the inputs that could not be encoded.")] = False,
) -> None:
    """Summarize a latents dataset: rows, model, bytes in and out, ratio, quality.

    Every compress run commits table versions; --version N reads the dataset as it was then.

    Example: aec inspect demo-output/latents --history
    """
    from cluster.dataset import open_dataset
    from cluster.storage import Location

    ds = open_dataset(Location.of(dataset), version=version)
    if history:
        table = Table("run", "status", "started", "finished", "rows", "errors", "skipped", "versions",
                      title=f"runs of {dataset}", title_justify="left")
        for r in ds.runs():
            versions = r.get("versions") or []
            span = f"{versions[0]}–{versions[-1]}" if len(versions) > 1 else fmt(versions[0] if versions else None)
            table.add_row(r["run_id"], r.get("status", "-"), r.get("started", "-"), r.get("finished", "-"),
                          fmt(r.get("rows")), fmt(r.get("errors")), fmt(r.get("skipped")), span)
        console.print(table)
    elif errors:
        table = Table("uri", "stage", "reason", "run", title=f"inputs not encoded in {dataset}", title_justify="left")
        for e in ds.errors():
            table.add_row(e["uri"], e["stage"], e["reason"], e["run_id"])
        console.print(table)
    else:
        console.print(kv_table(f"dataset {dataset}", ds.summary()))
        rows = ds.breakdown()
        total_files, total_bytes = sum(r["files"] for r in rows) or 1, sum(r["bytes"] for r in rows) or 1
        table = Table("modality", "codec", "files", "share of files", "bytes in", "share of bytes", "payload bytes",
                      title="files and bytes by modality and codec", title_justify="left")
        for r in rows:
            table.add_row(r["modality"], r["codec"], fmt(r["files"]), f"{r['files'] / total_files:.1%}", fmt(r["bytes"]),
                          f"{r['bytes'] / total_bytes:.1%}", fmt(r["payload_bytes"]))
        console.print(table)


@app.command()
@user_errors
def decode(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    out: Annotated[str, typer.Option("--out", help="Folder to restore the files into; `-` writes the one file "
                                                   "--key names to standard output.")],
    registry: Annotated[str | None, typer.Option(
        help="Model registry (default: the one the dataset records, if it is a local path; a URL there is "
             "never fetched unless you pass it here).")] = None,
    originals: Annotated[str | None, typer.Option(
        help="The collection's root: measure quality against the originals under it (by each row's key).")] = None,
    where: Annotated[str | None, typer.Option(
        help="Restore only the rows this SQL condition selects (DuckDB, over every column but the payload), "
             "e.g. \"key LIKE 'a/%'\".")] = None,
    key: Annotated[str | None, typer.Option(help="Restore only the file at this key (with --out -: to stdout).")] = None,
    version: Annotated[int | None, typer.Option(help="Restore the dataset as it was at this table version.")] = None,
    workers: Annotated[int, typer.Option(help="Restoring actors (a Ray Data job on the embedded instance or "
                                              "RAY_ADDRESS); 0: in this process, without Ray.")] = 2,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace files already in --out (by default a "
                                                               "restore never overwrites a file).")] = False,
) -> None:
    """Restore a dataset's rows as the archive was: each file at its path relative to the
    collection root (lossy rows in the modality's output format); with --originals, report quality.

    Rows that cannot be restored (or whose key would leave --out) are listed and skipped; the exit
    code is 1 if any failed.

    Example: aec decode demo-output/latents --out demo-output/restored --where "key LIKE 'astronaut%'"
    """
    import sys

    from cluster.dataset import open_dataset
    from cluster.decode import decode_dataset, restore_one
    from cluster.storage import Location

    ds = open_dataset(Location.of(dataset), version=version)
    meta = ds.metadata
    models_label, bundles = dataset_models(meta, dataset, registry)
    if out == "-":
        if not key:
            raise UserError("--out - writes one file to standard output: name it with --key")
        sys.stdout.buffer.write(restore_one(ds, bundles, key))
        sys.stdout.buffer.flush()
        return
    if key:
        quoted = key.replace("'", "''")
        where = f"key = '{quoted}'" + (f" AND ({where})" if where else "")
    if where:
        try:
            import duckdb  # noqa: F401
        except ImportError:
            raise UserError("--where needs DuckDB (an aec dependency): pip install --force-reinstall aec") from None
    if workers:
        from jobs.run import join_ray

        join_ray(verbose=False)  # one progress bar: Ray Data's own lines stay in its log
    total = None if where else ds.count_rows()
    with Progress(TextColumn("decoding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("decode", total=total)
        summary = decode_dataset(ds, bundles, out, originals=Location.of(originals) if originals else None,
                                 progress=lambda n: bar.advance(task, n), where=where, workers=workers,
                                 overwrite=overwrite)
    fields = {"out": summary["out"], "rows restored": summary["rows"], "rows failed": summary["failed"]}
    if originals:
        fields.update({"compared with originals": summary["compared"],
                       "originals unreachable": summary["originals_unreachable"], "quality": summary["quality"]})
    console.print(kv_table(f"restored {summary['rows']} files (models: {models_label})", fields))
    if summary["failures"]:
        for f in summary["failures"][:20]:
            err_console.print(f"failed: {f['uri']} ({f['id']}): {f['reason']}", highlight=False, soft_wrap=True)
        more = len(summary["failures"]) - 20
        err_console.print(error_line(f"{summary['failed']} of {summary['rows'] + summary['failed']} rows could "
                                     f"not be restored{f' ({more} more not shown)' if more > 0 else ''}; "
                                     f"the others are in {out}"), highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@user_errors
def query(
    dataset: Annotated[str, typer.Argument(help="A dataset path or URL written by `aec compress`.")],
    sql: Annotated[str, typer.Argument(help="SQL over the views `latents` (one row per encoded file) and `errors`.")],
    version: Annotated[int | None, typer.Option(help="Query this table version (default: the latest).")] = None,
) -> None:
    """Run DuckDB SQL over a dataset: its committed rows, read through the Delta log.

    Example: aec query demo-output/latents "SELECT modality, count(*) FROM latents GROUP BY 1"
    """
    try:
        import duckdb
    except ImportError:
        raise UserError("`aec query` needs DuckDB (an aec dependency): pip install --force-reinstall aec") from None
    import pyarrow as pa

    from cluster.dataset import open_dataset
    from cluster.sql import connect, read_only_statement
    from cluster.storage import Location
    from cluster.table import ERROR_SCHEMA

    ds = open_dataset(Location.of(dataset), version=version)
    # scanned lazily: only the columns the query names are read; nothing else is reachable
    con = connect({"latents": ds.dataset, "errors": pa.Table.from_pylist(ds.errors(), schema=ERROR_SCHEMA)})
    try:
        rel = con.sql(read_only_statement(sql))
    except duckdb.Error as exc:
        raise UserError(f"query failed: {str(exc).splitlines()[0]}; fix the SQL (the views are `latents`, "
                        "`errors`)") from None
    table = Table(*rel.columns, title=f"{dataset} (version {ds.version})", title_justify="left")
    for row in rel.fetchall():
        table.add_row(*(fmt(v) for v in row))
    console.print(table)


@app.command("sample-data")
def sample_data(
    out: Annotated[Path, typer.Argument(help="Folder to write the collection into.")],
    count: Annotated[int, typer.Option(help="How many files.")] = 400,
    seed: Annotated[int, typer.Option(help="Random seed of the crop positions.")] = 0,
    modality: Annotated[str, typer.Option(help="image: photo crops from scikit-image's samples; audio: generated "
                                                 "clips; text: source files of Python's standard library.")] = "image",
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
