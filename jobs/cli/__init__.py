"""The ``aec`` command line: it parses, calls the jobs (:mod:`jobs.run`) and the libraries, and
prints. One module per command group:

- :mod:`jobs.cli.data` — train, compress, inspect, decode, query, sample-data, validate;
- :mod:`jobs.cli.cluster` — ``aec cluster`` (the local Ray head);
- :mod:`jobs.cli.jobs` — ``aec submit`` and ``aec jobs``;
- :mod:`jobs.cli.models` — ``aec models`` and ``aec datasets``;
- :mod:`jobs.cli.schedule` — ``aec schedule`` and ``aec scheduler``;
- :mod:`jobs.cli.options` — the options and helpers they share.

Everything runs on the embedded default (a local Ray instance) or on the Ray cluster at
``RAY_ADDRESS``.
"""

from __future__ import annotations

import typer

from jobs.cli import cluster, data, jobs, models, schedule

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="aec: compress image, audio and text archives into learned latents with Ray, "
                       "query them with Arrow tools.")
app.add_typer(data.app)
app.add_typer(jobs.submit_app)
app.add_typer(cluster.app, name="cluster")
app.add_typer(jobs.app, name="jobs")
app.add_typer(models.app, name="models")
app.add_typer(models.datasets_app, name="datasets")
app.add_typer(schedule.app, name="schedule")
app.add_typer(schedule.scheduler_app, name="scheduler")


def main() -> None:  # pragma: no cover
    app()
