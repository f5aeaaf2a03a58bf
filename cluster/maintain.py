"""Keeping a latents table cheap to commit to and to read: compaction, vacuum, checkpoints.

A commit's cost grows with the table's live parts (~2 ms per 1,000), so many small parts — a job
with small batches, many short re-runs — make every later commit and every reader's planning
slower. ``optimize`` rewrites small parts into large ones (one commit, rows unchanged, safe beside
a running job: the job's next commit sees the parts replaced and re-reads the ids).

``vacuum`` deletes files no version newer than the retention window needs, and parts a killed job
wrote but never committed. A running job's parts are uncommitted until its next commit, so the
window must stay far above any job's write-to-commit gap: it is never below ``MIN_RETENTION_HOURS``.
"""

from __future__ import annotations

from typing import Any

from cluster.storage import Location, StorageError
from cluster.table import ERRORS_TABLE, load_table

__all__ = ["MIN_RETENTION_HOURS", "optimize", "vacuum"]

MIN_RETENTION_HOURS = 168  # Delta's own default (7 days); a job's parts wait minutes for their commit


def _tables(loc: Location) -> list[tuple[str, Any]]:
    table = load_table(loc)
    if table is None:
        raise StorageError(f"{loc.url!r} is not an aec dataset (no Delta table there); check the path")
    errors = load_table(loc.join(*ERRORS_TABLE.split("/")))
    return [("rows", table)] + ([("errors", errors)] if errors is not None else [])


def optimize(loc: Location, target_mb: int = 256) -> dict[str, Any]:
    """Compact small parts into parts of about ``target_mb``; then write a checkpoint."""
    out = {}
    for name, table in _tables(loc):
        metrics = table.optimize.compact(target_size=target_mb * 2**20)
        table.create_checkpoint()
        out[name] = {"parts removed": metrics.get("numFilesRemoved"), "parts added": metrics.get("numFilesAdded")}
    return out


def vacuum(loc: Location, retention_hours: int = MIN_RETENTION_HOURS, dry_run: bool = True) -> list[str]:
    """Delete (or with ``dry_run`` list) files older than ``retention_hours`` that the current
    version does not use, uncommitted parts included."""
    if retention_hours < MIN_RETENTION_HOURS:
        raise StorageError(f"retention {retention_hours} h is below {MIN_RETENTION_HOURS} h: a running job's "
                           "parts wait for their commit and would be deleted; use a longer retention")
    files: list[str] = []
    for _, table in _tables(loc):
        files += table.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False,
                              full=True)
    return files
