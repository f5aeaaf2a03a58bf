"""Staging: each encoded batch becomes one Parquet part written under the table, and one small
descriptor row that the driver commits (cluster.commit).

A part is invisible to every Delta reader until a commit lists it. Part names carry the run id
and the hash of the ids they hold: a retried task of the same run (a killed actor, a lost
worker) rewrites the same file instead of adding a duplicate, and two jobs never write one name.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cluster.encode import ERROR_COLUMN
from cluster.storage import Location, with_retries

__all__ = ["DESCRIPTOR_SCHEMA", "describe_part", "part_name", "part_stats", "stage_part", "write_part"]

DESCRIPTOR_SCHEMA = pa.schema([
    ("file", pa.string()),  # relative to the table; null when the batch held only error rows
    ("rows", pa.int64()),
    ("size", pa.int64()),
    ("stats", pa.string()),  # the Delta add action's statistics (JSON)
    ("input_bytes", pa.int64()),
    ("payload_bytes", pa.int64()),
    ("ids", pa.list_(pa.string())),
    ("uris", pa.list_(pa.string())),
    ("errors", pa.string()),  # JSON list of {uri, sha256, bytes, stage, reason}
])



def part_name(run_id: str, ids: list[str]) -> str:
    return f"part-{run_id}-{hashlib.sha256(''.join(sorted(ids)).encode()).hexdigest()[:24]}.parquet"


def part_stats(table: pa.Table) -> str:
    """Delta statistics of a part: numRecords, per-column min/max and null counts.

    Every flat column gets min/max: delta-rs's pyarrow dataset turns a missing bound into
    ``column >= null``, which makes every filter on that column drop the part."""
    lo, hi = {}, {}
    for f in table.schema:
        if pa.types.is_string(f.type) or pa.types.is_integer(f.type):
            mm = pc.min_max(table.column(f.name)).as_py()
            if mm["min"] is not None:
                lo[f.name], hi[f.name] = mm["min"], mm["max"]
    nulls = {f.name: table.column(f.name).null_count for f in table.schema
             if not pa.types.is_nested(f.type)}
    return json.dumps({"numRecords": table.num_rows, "minValues": lo, "maxValues": hi, "nullCount": nulls})


def describe_part(name: str | None, table: pa.Table, size: int) -> dict[str, Any]:
    """What the driver needs of a part to commit it (``table`` holds the table's columns)."""
    return {"file": name, "rows": table.num_rows, "size": size, "stats": part_stats(table),
            "input_bytes": int(pc.sum(table.column("bytes")).as_py() or 0),
            "payload_bytes": int(pc.sum(table.column("payload_bytes")).as_py() or 0),
            "ids": table.column("id").to_pylist(), "uris": table.column("uri").to_pylist()}


def write_part(output: Location, name: str, table: pa.Table) -> int:
    """Write ``table`` as the part ``name`` under ``output``; its size in bytes."""
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    with_retries(output.fs.makedirs, output.path, exist_ok=True, what=f"output {output.url!r}")
    with_retries(output.fs.pipe_file, posixpath.join(output.path, name), data, what=f"output {output.url!r}")
    return len(data)


def stage_part(batch: pa.Table, output_url: str, run_id: str, schema_ipc: bytes,
               storage_options: dict[str, Any]) -> pa.Table:
    """Ray Data task: write the good rows of ``batch`` as a part under the table; describe it."""
    schema = pa.ipc.read_schema(pa.py_buffer(schema_ipc))
    failed = pc.is_valid(batch.column(ERROR_COLUMN))
    errors = []
    for r in batch.filter(failed).select(["uri", "sha256", "bytes", ERROR_COLUMN]).to_pylist():
        stage, _, reason = r[ERROR_COLUMN].partition(": ")
        errors.append({"uri": r["uri"], "sha256": r["sha256"], "bytes": r["bytes"], "stage": stage, "reason": reason})
    good = batch.filter(pc.invert(failed))
    if "payload_bytes" in good.column_names:  # recomputed: it must be the payload's own length
        good = good.drop_columns(["payload_bytes"])
    good = good.append_column("payload_bytes", pc.binary_length(good.column("payload")).cast(pa.int64()))
    good = good.select(schema.names).cast(schema)
    name, size = None, 0
    if good.num_rows:
        name = part_name(run_id, good.column("id").to_pylist())
        size = write_part(Location.of(output_url, storage_options), name, good)
    row = {**describe_part(name, good, size), "errors": json.dumps(errors)}
    return pa.Table.from_pylist([row], schema=DESCRIPTOR_SCHEMA)
