"""`aec submit` and `aec jobs`: jobs on a cluster and in the catalog."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jobs.catalog import TERMINAL, JobCatalog
from jobs.cli.options import (
    DEFAULT_REGISTRY,
    AddressOption,
    RegistryOption,
    client,
    iso,
)
from jobs.registry import RegistryError
from jobs.spec import load_spec
from jobs.ui import console, err_console, fmt, kv_table, user_errors

app = typer.Typer(no_args_is_help=True, help="Jobs on a cluster and in the catalog: list, status, logs, cancel.")
#: `aec submit`, a top-level command
submit_app = typer.Typer()


@submit_app.command("submit")
@user_errors
def submit(
    spec: Annotated[Path, typer.Argument(help="A train or compress job spec (YAML).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a spec key (repeatable).")] = None,
    address: AddressOption = None,
) -> None:
    """Run a spec on a Ray cluster through the Ray Jobs API; prints the job id at once.

    The code and the spec travel with the job; local paths in the spec are made absolute
    (meaningful when the cluster shares this filesystem; use s3:// URLs on a remote cluster).

    Example: aec submit jobs/specs/photos-compress.yaml --address http://127.0.0.1:8265
    """

    job = load_spec(spec, set_)
    jobs_api = client(address)
    submitted = jobs_api.submit(job, JobCatalog(job.with_absolute_paths(Path.cwd()).registry, job.storage_options))
    console.print(submitted.job_id, highlight=False)
    err_console.print(f"submitted to {submitted.address}; follow it with: aec jobs logs {submitted.job_id} --follow",
                      highlight=False)


@app.command("list")
@user_errors
def jobs_list(
    registry: RegistryOption = DEFAULT_REGISTRY,
    address: AddressOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many jobs.")] = 20,
) -> None:
    """Jobs in the catalog, newest first; statuses of running ones refreshed from the cluster.

    Example: aec jobs list --registry .aec/registry
    """
    catalog = JobCatalog(registry)
    records = catalog.jobs()
    known = {r["id"] for r in records}
    jobs_api = None
    try:  # the cluster in use also knows jobs whose catalog is in another registry
        jobs_api = client(address)
        for j in jobs_api.list():
            meta = j.get("metadata", {})
            if j["id"] in known or "aec_kind" not in meta:
                continue
            other = JobCatalog(meta["aec_registry"]).job(j["id"]) if meta.get("aec_registry") else None
            records.append({**(other or {}), "id": j["id"], "kind": meta["aec_kind"], "status": j["status"],
                            "submitted_at": (other or {}).get("submitted_at") or iso(j.get("start_time"))})
    except Exception:  # noqa: BLE001 - no cluster in use: the catalog is what there is
        jobs_api = None
    records = sorted(records, key=lambda r: r.get("submitted_at") or r.get("created_at") or "", reverse=True)[:limit]
    for r in records:
        if r.get("status") not in TERMINAL and r.get("address"):
            try:
                jobs_api = jobs_api or client(address or r["address"])
                live = jobs_api.status(r["id"])
                if live != r["status"]:
                    r["status"] = live
                    if live in TERMINAL and live != "SUCCEEDED" and r["id"] in known:  # died before saying so
                        catalog.update_job(r["id"], status=live)
            except Exception:  # noqa: BLE001 - cluster gone: show what the catalog knows
                pass
    table = Table(title=f"jobs in {catalog.loc.url}", title_justify="left")
    table.add_column("id", overflow="fold", min_width=20)
    for col in ("kind", "status", "model", "rows", "errors", "seconds"):
        table.add_column(col, no_wrap=True)
    for r in records:
        table.add_row(r["id"], r.get("kind", "-"), r.get("status", "-"), r.get("model_version") or r.get("model", "-"),
                      fmt(r.get("rows")), fmt(r.get("errors")), fmt(r.get("seconds")))
    console.print(table)


@app.command("status")
@user_errors
def jobs_status(
    job_id: Annotated[str, typer.Argument(help="A job id from `aec submit` or `aec jobs list`.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
    address: AddressOption = None,
) -> None:
    """A job's status on the cluster and its catalog record.

    Example: aec jobs status aec-photos-compress-20261122-020000-1a2b3c
    """
    record = JobCatalog(registry).job(job_id) or {}
    rows: dict[str, Any] = {}
    try:  # the cluster the job ran on, else the cluster in use
        info = client(address or record.get("address")).info(job_id)
    except Exception:  # noqa: BLE001 - no cluster, or it does not know the job
        info = None
    if info is not None:
        rows.update(status=info["status"], message=info["message"])
        where = info.get("metadata", {}).get("aec_registry")
        if not record and where:  # its catalog is in the registry its spec named
            record = JobCatalog(where).job(job_id) or {}
    for key in ("kind", "name", "model_version", "input", "output", "spec_sha256", "submitted_at", "started_at",
                "finished_at", "seconds", "inputs", "rows", "errors", "ratio", "quality", "promotion"):
        if record.get(key) is not None:
            rows[key] = record[key]
    if not rows:
        raise RegistryError(f"job {job_id!r} is neither in the catalog {JobCatalog(registry).loc.url!r} nor on a cluster; "
                            "see `aec jobs list`")
    rows.setdefault("status", record.get("status"))
    console.print(kv_table(f"job {job_id}", rows))
    console.print_json(json.dumps(record.get("spec", {}))) if record.get("spec") else None


@app.command("logs")
@user_errors
def jobs_logs(
    job_id: Annotated[str, typer.Argument(help="A job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")] = False,
    registry: RegistryOption = DEFAULT_REGISTRY,
    address: AddressOption = None,
) -> None:
    """Print a job's driver logs (train/compress output), optionally following them.

    Example: aec jobs logs aec-photos-train-20261122-020000-1a2b3c --follow
    """
    record = JobCatalog(registry).job(job_id) or {}
    jobs_api = client(address or record.get("address"))
    shown = 0
    while True:
        text = jobs_api.logs(job_id)
        if len(text) > shown:
            console.out(text[shown:], end="", highlight=False)
            shown = len(text)
        if not follow or jobs_api.status(job_id) in TERMINAL:
            if follow:  # the last lines written before the end
                text = jobs_api.logs(job_id)
                console.out(text[shown:], end="", highlight=False)
            break
        time.sleep(1.0)


@app.command("cancel")
@user_errors
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="A job id.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
    address: AddressOption = None,
) -> None:
    """Stop a running job. A compress job keeps what it committed; re-submitting it resumes.

    Example: aec jobs cancel aec-photos-compress-20261122-020000-1a2b3c
    """
    catalog = JobCatalog(registry)
    record = catalog.job(job_id) or {}
    jobs_api = client(address or record.get("address"))
    stopped = jobs_api.stop(job_id)
    if record:
        catalog.update_job(job_id, status="STOPPED", message="cancelled with `aec jobs cancel`")
    console.print(f"stopping {job_id}" if stopped else f"{job_id} was not running ({jobs_api.status(job_id)})", highlight=False)
