"""`aec` commands for operating on a cluster: cluster up/down, submit, jobs, models, schedules.

Registered on the main app by :mod:`jobs.cli`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cluster.clock import utc_text
from jobs.catalog import TERMINAL, JobCatalog
from jobs.registry import ModelRegistry, RegistryError
from jobs.spec import JobSpec
from jobs.ui import console, err_console, fmt, kv_table, user_errors

__all__ = ["register"]

cluster_app = typer.Typer(no_args_is_help=True, help="Start and stop a local Ray head (the embedded cluster).")
jobs_app = typer.Typer(no_args_is_help=True, help="Jobs on a cluster and in the catalog: list, status, logs, cancel.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry: list, show, promote.")
schedule_app = typer.Typer(no_args_is_help=True, help="Cron schedules that submit a spec (nightly retraining).")
scheduler_app = typer.Typer(no_args_is_help=True, help="The process that submits scheduled jobs.")
datasets_app = typer.Typer(no_args_is_help=True, help="The dataset catalog: what compress jobs wrote.")

RegistryOption = Annotated[str, typer.Option("--registry", envvar="AEC_REGISTRY",
                                             help="Model registry (and catalog) path or URL.")]
AddressOption = Annotated[str | None, typer.Option("--address", help="Jobs API URL (default: AEC_ADDRESS, else the "
                                                                      "head `aec cluster up` started).")]
DEFAULT_REGISTRY = JobSpec.model_fields["registry"].default  # the spec is the one source of defaults


def home() -> Path:
    """Where `aec` keeps machine-local state: the local head's state file, the schedule database."""
    return Path(os.environ.get("AEC_HOME", str(Path.home() / ".aec")))


def _client(address: str | None) -> Any:
    from jobs.submit import JobsClient, resolve_address

    return JobsClient(resolve_address(address, home()))


def _iso(ms: float | None) -> str | None:
    """Ray's job times (ms since the epoch) as the catalog writes times."""
    return utc_text(ms / 1000) if ms else None


def _when(ts: float | None) -> str:
    return utc_text(ts, "%Y-%m-%d %H:%M:%SZ") if ts else "-"


# cluster ---------------------------------------------------------------------------------------
@cluster_app.command("up")
@user_errors
def cluster_up(
    num_cpus: Annotated[int | None, typer.Option(help="CPUs the head offers (default: all).")] = None,
    port: Annotated[int, typer.Option(help="GCS port.")] = 6379,
    dashboard_port: Annotated[int, typer.Option(help="Dashboard and Jobs API port.")] = 8265,
    metrics_port: Annotated[int, typer.Option(help="Ray's Prometheus export port (encoder actor metrics).")] = 8080,
    driver_metrics_port: Annotated[int, typer.Option(help="Port job drivers export their metrics on.")] = 8081,
) -> None:
    """Start a Ray head on 127.0.0.1 with token authentication; `aec cluster down` stops it.

    Example: aec cluster up && aec submit jobs/specs/photos-compress.yaml
    """
    from cluster.head import head_status, start_head
    from cluster.runtime import auth_token

    running = head_status(home())
    if running is None:
        with console.status("starting a Ray head on 127.0.0.1 ..."):
            head = start_head(home(), num_cpus=num_cpus, port=port, dashboard_port=dashboard_port,
                              metrics_port=metrics_port, driver_metrics_port=driver_metrics_port)
        title = "Ray head started"
    else:
        head, title = running, "Ray head already running (started by aec)"
    console.print(kv_table(title, {
        "Jobs API / dashboard": head.address, "GCS address": head.gcs_address,
        "Ray metrics (encoder actors)": head.metrics_url,
        "driver metrics": f"http://127.0.0.1:{head.driver_metrics_port}/metrics (while a compress job runs)",
        "token": "found (~/.ray/auth_token or RAY_AUTH_TOKEN); aec sends it" if auth_token() else "not found",
        "log": head.log, "pid": head.pid,
    }))
    console.print(f"submit with: aec submit SPEC   (or any Ray client: RAY_ADDRESS={head.address})", highlight=False)


@cluster_app.command("down")
@user_errors
def cluster_down() -> None:
    """Stop the head `aec cluster up` started, and nothing else.

    Example: aec cluster down
    """
    from cluster.head import stop_head

    with console.status("stopping the Ray head ..."):
        head = stop_head(home())
    console.print(f"stopped the Ray head at {head.address} (pid {head.pid})" if head else "no Ray head started by aec is running",
                  highlight=False)


@cluster_app.command("status")
@user_errors
def cluster_status() -> None:
    """Say whether the head `aec cluster up` started is running, and where.

    Example: aec cluster status
    """
    from cluster.head import head_status

    head = head_status(home())
    if head is None:
        console.print("no Ray head started by aec is running (start one with `aec cluster up`)")
        raise typer.Exit(1)
    console.print(kv_table("Ray head", {"Jobs API": head.address, "metrics": head.metrics_url, "pid": head.pid,
                                        "up since": _when(head.started_at)}))


# submit / jobs ---------------------------------------------------------------------------------
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
    from jobs.spec import load_spec

    job = load_spec(spec, set_)
    client = _client(address)
    submitted = client.submit(job, JobCatalog(job.with_absolute_paths(Path.cwd()).registry, job.storage_options))
    console.print(submitted.job_id, highlight=False)
    err_console.print(f"submitted to {submitted.address}; follow it with: aec jobs logs {submitted.job_id} --follow",
                      highlight=False)


@jobs_app.command("list")
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
    client = None
    try:  # the cluster in use also knows jobs whose catalog is in another registry
        client = _client(address)
        for j in client.list():
            meta = j.get("metadata", {})
            if j["id"] in known or "aec_kind" not in meta:
                continue
            other = JobCatalog(meta["aec_registry"]).job(j["id"]) if meta.get("aec_registry") else None
            records.append({**(other or {}), "id": j["id"], "kind": meta["aec_kind"], "status": j["status"],
                            "submitted_at": (other or {}).get("submitted_at") or _iso(j.get("start_time"))})
    except Exception:  # noqa: BLE001 - no cluster in use: the catalog is what there is
        client = None
    records = sorted(records, key=lambda r: r.get("submitted_at") or r.get("created_at") or "", reverse=True)[:limit]
    for r in records:
        if r.get("status") not in TERMINAL and r.get("address"):
            try:
                client = client or _client(address or r["address"])
                live = client.status(r["id"])
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


@jobs_app.command("status")
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
        info = _client(address or record.get("address")).info(job_id)
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


@jobs_app.command("logs")
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
    client = _client(address or record.get("address"))
    shown = 0
    while True:
        text = client.logs(job_id)
        if len(text) > shown:
            console.out(text[shown:], end="", highlight=False)
            shown = len(text)
        if not follow or client.status(job_id) in TERMINAL:
            if follow:  # the last lines written before the end
                text = client.logs(job_id)
                console.out(text[shown:], end="", highlight=False)
            break
        time.sleep(1.0)


@jobs_app.command("cancel")
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
    client = _client(address or record.get("address"))
    stopped = client.stop(job_id)
    if record:
        catalog.update_job(job_id, status="STOPPED", message="cancelled with `aec jobs cancel`")
    console.print(f"stopping {job_id}" if stopped else f"{job_id} was not running ({client.status(job_id)})", highlight=False)


# models ----------------------------------------------------------------------------------------
@models_app.command("list")
@user_errors
def models_list(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """Every model and version in the registry, with held-out quality and the production alias.

    Example: aec models list --registry .aec/registry
    """
    reg = ModelRegistry(registry)
    table = Table("model", "version", "aliases", "modality", "architecture", "held-out", "files", "registered",
                  title=f"models in {reg.loc.url}", title_justify="left")
    for name in reg.names():
        aliases = reg.aliases(name)
        for v in reg.versions(name):
            info = reg.resolve(f"{name}@{v}").info
            table.add_row(name, str(v), ", ".join(a for a, x in aliases.items() if x == v) or "-",
                          info.get("modality", "-"), info.get("architecture", "-"),
                          fmt({k: x for k, x in info.get("heldout", {}).items() if k != "files"}),
                          fmt(info.get("lineage", {}).get("files")), info.get("registered_at", "-"))
    console.print(table)


@models_app.command("zoo")
def models_zoo() -> None:
    """The pretrained models shipped with aec, one per line, name first: use them as
    `model: zoo:NAME` in a compress spec, or `init: zoo:NAME` in a train spec.

    Example: aec models zoo
    """
    from aecore.zoo import ZOO

    for entry in ZOO.values():
        state = "" if entry.available else "  (weights missing from this installation)"
        rate = f"rate point {entry.rate_point:g}" if entry.rate_point is not None else "-"
        default = "  [default starting point]" if entry.default else ""
        console.print(f"zoo:{entry.name}\t{entry.modality}\t{rate}\t{entry.summary}{default}{state}",
                      highlight=False, soft_wrap=True)


@models_app.command("show")
@user_errors
def models_show(
    ref: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME@production.")],
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """A model version's spec, training metrics, data lineage, held-out quality and promotion.

    Example: aec models show photos@production
    """
    reg = ModelRegistry(registry)
    mv = reg.resolve(ref)
    info = mv.info
    aliases = [a for a, v in reg.aliases(mv.name).items() if v == mv.version]
    console.print(kv_table(f"{mv.ref}" + (f" ({', '.join(aliases)})" if aliases else ""), {
        "modality": info.get("modality"), "architecture": f"{info.get('architecture')}/{info.get('preset')}",
        "registered": info.get("registered_at"), "training metrics": info.get("metrics", {}),
        "held-out quality": info.get("heldout", {}), "lineage": info.get("lineage", {}),
        "promotion": (info.get("promotion") or {}).get("reason"), "job": info.get("job_id"),
        "train seconds": info.get("train_seconds"),
    }))
    console.print_json(json.dumps(info.get("spec", {})))


@models_app.command("promote")
@user_errors
def models_promote(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    alias: Annotated[str, typer.Option(help="The alias to point at it.")] = "production",
    registry: RegistryOption = DEFAULT_REGISTRY,
) -> None:
    """Point an alias (production) at a version, by hand (no quality gate).

    Example: aec models promote photos 3
    """
    reg = ModelRegistry(registry)
    before = reg.aliases(name).get(alias)
    reg.promote(name, version, alias)
    console.print(f"{name}@{alias}: v{before} -> v{version}" if before else f"{name}@{alias} -> v{version}", highlight=False)


# datasets --------------------------------------------------------------------------------------
@datasets_app.command("list")
@user_errors
def datasets_list(registry: RegistryOption = DEFAULT_REGISTRY) -> None:
    """Datasets compress jobs wrote, with their model, rows and ratio.

    Example: aec datasets list
    """
    catalog = JobCatalog(registry)
    table = Table("output", "modality", "model", "rows", "errors", "ratio", "last job", "updated",
                  title=f"datasets in {catalog.loc.url}", title_justify="left")
    for d in catalog.datasets():
        table.add_row(d["output"], d.get("modality", "-"), d.get("model", "-"), fmt(d.get("rows")), fmt(d.get("errors")),
                      fmt(d.get("ratio")), d.get("last_job", "-"), d.get("updated_at", "-"))
    console.print(table)


# schedules -------------------------------------------------------------------------------------
def _store() -> Any:
    from jobs.schedule import ScheduleStore

    return ScheduleStore(home() / "schedules.db")


@schedule_app.command("add")
@user_errors
def schedule_add(
    name: Annotated[str, typer.Argument(help="Schedule name.")],
    spec: Annotated[Path, typer.Argument(help="The spec to submit (read now; local paths made absolute).")],
    cron: Annotated[str, typer.Option(help="Cron: 5 fields, or 6 with seconds last (croniter).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a spec key (repeatable).")] = None,
    address: AddressOption = None,
) -> None:
    """Submit SPEC on a cron schedule (run by `aec scheduler run`).

    Never two runs of one schedule at once; runs missed while the scheduler was down are
    coalesced into one run when it starts again.

    Example: aec schedule add nightly-photos --cron "0 2 * * *" jobs/specs/photos-train.yaml
    """
    from jobs.spec import load_spec

    store = _store()
    job = load_spec(spec, set_).with_absolute_paths(Path.cwd())
    store.add(name, cron, job, address)
    console.print(f"schedule {name!r}: {job.kind} {job.name} at {cron!r}; next run {_when(store.next_fire(store.get(name)))}",
                  highlight=False)


@schedule_app.command("list")
@user_errors
def schedule_list(history: Annotated[int, typer.Option(help="Runs of history to show per schedule.")] = 5) -> None:
    """Schedules, their next run and their run history.

    Example: aec schedule list
    """
    store = _store()
    rows = store.schedules()
    if not rows:
        console.print("no schedules (add one with `aec schedule add`)")
        return
    table = Table("schedule", "cron", "job", "next run", "run history (newest first)", title="schedules",
                  title_justify="left")
    for row in rows:
        spec = store.spec(row)
        runs = "\n".join(f"{_when(r['scheduled_for'])} {r['status']} {r['job_id'] or ''} {r['message'] or ''}".strip()
                         for r in store.runs(row["name"], limit=history)) or "-"
        table.add_row(row["name"], row["cron"], f"{spec.kind} {spec.name}", _when(store.next_fire(row)), runs)
    console.print(table)


@schedule_app.command("remove")
@user_errors
def schedule_remove(name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Remove a schedule (its run history stays in the database).

    Example: aec schedule remove nightly-photos
    """
    from jobs.schedule import ScheduleError

    if not _store().remove(name):
        raise ScheduleError(f"no schedule {name!r}; see `aec schedule list`")
    console.print(f"removed schedule {name!r}")


@scheduler_app.command("run")
@user_errors
def scheduler_run(
    address: AddressOption = None,
    poll: Annotated[float, typer.Option(help="Seconds between checks.")] = 1.0,
    metrics_port: Annotated[int | None, typer.Option(help="Serve scheduler metrics here (0: none).")] = 8082,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
) -> None:
    """Submit due scheduled jobs to the cluster until stopped; state survives restarts.

    Example: aec scheduler run --address http://127.0.0.1:8265
    """
    from cluster.metrics import ProcessMetrics
    from jobs.schedule import Scheduler
    from jobs.submit import resolve_address

    store = _store()
    metrics = ProcessMetrics("scheduler", metrics_port or None)
    clients: dict[str, Any] = {}

    def client_for(addr: str | None) -> Any:
        from jobs.submit import JobsClient

        url = resolve_address(addr or address, home())
        if url not in clients:
            clients[url] = JobsClient(url)
        return clients[url]

    def submit_job(spec: Any, addr: str | None, name: str) -> str:
        return client_for(addr).submit(spec, JobCatalog(spec.registry, spec.storage_options), name_prefix=name,
                                       schedule=name).job_id

    scheduler = Scheduler(store, submit_job, lambda job_id, addr: client_for(addr).status(job_id), metrics)
    end = time.monotonic() + duration if duration else None
    console.print(f"scheduler: {len(store.schedules())} schedule(s) in {store.path}"
                  + (f"; metrics on http://127.0.0.1:{metrics.port}/metrics" if metrics.port else ""), highlight=False)
    try:
        scheduler.run(poll=poll, until=lambda: end is not None and time.monotonic() > end,
                      on_event=lambda e: console.print(f"{_when(time.time())} {e.schedule}: {e.status} {e.message}",
                                                       highlight=False))
    except KeyboardInterrupt:
        console.print("scheduler stopped")
    finally:
        metrics.close(linger=0)


def register(app: typer.Typer) -> None:
    app.command("submit")(submit)
    app.add_typer(cluster_app, name="cluster")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(models_app, name="models")
    app.add_typer(schedule_app, name="schedule")
    app.add_typer(scheduler_app, name="scheduler")
    app.add_typer(datasets_app, name="datasets")
