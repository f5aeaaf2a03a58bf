"""What several `aec` commands share: options declared once, where local state lives, times."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from cluster.clock import utc_text
from jobs.spec import JobSpec

__all__ = ["DEFAULT_REGISTRY", "AddressOption", "RegistryOption", "SetOption", "client", "home", "iso", "when"]

SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a spec key: --set epochs=3 (repeatable).")]
RegistryOption = Annotated[str, typer.Option("--registry", envvar="AEC_REGISTRY",
                                             help="Model registry (and catalog) path or URL.")]
AddressOption = Annotated[str | None, typer.Option("--address", help="Jobs API URL (default: AEC_ADDRESS, else the "
                                                                      "head `aec cluster up` started).")]
DEFAULT_REGISTRY = JobSpec.model_fields["registry"].default  # the spec is the one source of defaults


def home() -> Path:
    """Where `aec` keeps machine-local state: the local head's state file, the schedule database."""
    return Path(os.environ.get("AEC_HOME", str(Path.home() / ".aec")))


def client(address: str | None) -> Any:
    from jobs.submit import JobsClient, resolve_address

    return JobsClient(resolve_address(address, home()))


def iso(ms: float | None) -> str | None:
    """Ray's job times (ms since the epoch) as the catalog writes times."""
    return utc_text(ms / 1000) if ms else None


def when(ts: float | None) -> str:
    return utc_text(ts, "%Y-%m-%d %H:%M:%SZ") if ts else "-"
