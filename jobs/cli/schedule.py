"""`aec schedule` and `aec scheduler`: cron schedules that submit a spec, and the process that does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from jobs.catalog import JobCatalog
from jobs.cli.options import (
    AddressOption,
    home,
    when,
)
from jobs.spec import load_spec
from jobs.ui import console, user_errors

app = typer.Typer(no_args_is_help=True, help="Cron schedules that submit a spec (nightly retraining).")
scheduler_app = typer.Typer(no_args_is_help=True, help="The process that submits scheduled jobs.")


def _store() -> Any:
    from jobs.schedule import ScheduleStore

    return ScheduleStore(home() / "schedules.db")


@app.command("add")
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

    store = _store()
    job = load_spec(spec, set_).with_absolute_paths(Path.cwd())
    store.add(name, cron, job, address)
    console.print(f"schedule {name!r}: {job.kind} {job.name} at {cron!r}; next run {when(store.next_fire(store.get(name)))}",
                  highlight=False)


@app.command("list")
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
        runs = "\n".join(f"{when(r['scheduled_for'])} {r['status']} {r['job_id'] or ''} {r['message'] or ''}".strip()
                         for r in store.runs(row["name"], limit=history)) or "-"
        table.add_row(row["name"], row["cron"], f"{spec.kind} {spec.name}", when(store.next_fire(row)), runs)
    console.print(table)


@app.command("remove")
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
                      on_event=lambda e: console.print(f"{when(time.time())} {e.schedule}: {e.status} {e.message}",
                                                       highlight=False))
    except KeyboardInterrupt:
        console.print("scheduler stopped")
    finally:
        metrics.close(linger=0)
