"""`aec cluster`: start, stop and look at the local Ray head (the embedded cluster)."""

from __future__ import annotations

from typing import Annotated

import typer

from jobs.cli.options import (
    home,
    when,
)
from jobs.ui import console, kv_table, user_errors

app = typer.Typer(no_args_is_help=True, help="Start and stop a local Ray head (the embedded cluster).")


@app.command("up")
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


@app.command("down")
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


@app.command("status")
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
                                        "up since": when(head.started_at)}))
