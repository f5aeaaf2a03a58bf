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

import pyarrow as pa

from cluster.storage import Location, StorageError, with_retries
from cluster.table import ERRORS_TABLE, load_table, read_properties

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
    tables = _tables(loc)
    if not read_properties(tables[0][1]):
        raise StorageError(f"{loc.url!r} is a Delta table aec did not write; vacuum it with the tool that wrote it")
    files: list[str] = []
    for name, table in tables:
        # only files the log once referenced and then removed (never full=True: that deletes every
        # file the log does not list — users' files placed in the folder among them)
        files += table.vacuum(retention_hours=retention_hours, dry_run=dry_run, enforce_retention_duration=False,
                              full=False)
        at = loc if name == "rows" else loc.join(*ERRORS_TABLE.split("/"))
        files += _orphan_parts(at, table, retention_hours, dry_run)
    return files


def _orphan_parts(loc: Location, table: Any, retention_hours: int, dry_run: bool) -> list[str]:
    """Parts an aec job staged and never committed (``part-*.parquet`` at the table's top that no
    commit in the log ever added, older than the retention): a killed job's leftovers, nothing else."""
    import posixpath
    import time

    added = set(pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()) | _ever_added(loc)
    try:
        found = with_retries(loc.fs.ls, loc.path, detail=True, what=f"dataset {loc.url!r}")
    except FileNotFoundError:
        return []
    cutoff = time.time() - retention_hours * 3600
    gone = []
    for info in found:
        name = posixpath.basename(info["name"].rstrip("/"))
        if info.get("type") != "file" or not (name.startswith("part-") and name.endswith(".parquet")):
            continue
        if name in added or _mtime(info) > cutoff:
            continue
        if not dry_run:
            with_retries(loc.fs.rm, info["name"], what=f"dataset {loc.url!r}")
        gone.append(name)
    return gone


def _ever_added(loc: Location) -> set[str]:
    """Every path an ``add`` action of a commit still in the log names (removed ones included:
    they are Delta's to vacuum, after their own retention)."""
    import json
    import posixpath

    log = posixpath.join(loc.path, "_delta_log")
    paths: set[str] = set()
    for name in with_retries(loc.fs.ls, log, detail=False, what=f"dataset {loc.url!r}"):
        if not name.endswith(".json"):
            continue
        for line in with_retries(loc.fs.cat_file, name, what=f"dataset {loc.url!r}").decode().splitlines():
            action = json.loads(line) if line.strip() else {}
            if "add" in action:
                paths.add(action["add"]["path"])
    return paths


def _mtime(info: dict[str, Any]) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("created") or 0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
