"""Staging: each encoded batch becomes one Parquet part in the staging folder, and one
small descriptor row that the driver commits.

Part names are the hash of the ids they hold, so a retried task (a killed actor, a lost
worker) rewrites the same file instead of adding a duplicate.
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

from cluster.encode import ERROR_COLUMN, QUALITY_COLUMN
from cluster.storage import Location, with_retries

__all__ = ["DESCRIPTOR_SCHEMA", "describe_part", "part_name", "stage_part"]

DESCRIPTOR_SCHEMA = pa.schema([
    ("file", pa.string()),  # null when the batch held only error rows
    ("rows", pa.int64()),
    ("size", pa.int64()),
    ("sha256", pa.string()),
    ("input_bytes", pa.int64()),
    ("payload_bytes", pa.int64()),
    ("ids", pa.list_(pa.string())),
    ("uris", pa.list_(pa.string())),
    ("errors", pa.string()),  # JSON list of {uri, sha256, bytes, stage, reason}
    ("quality", pa.string()),  # JSON list of per-sample metric dicts
])


def part_name(ids: list[str]) -> str:
    return f"part-{hashlib.sha256(''.join(sorted(ids)).encode()).hexdigest()[:24]}.parquet"


def describe_part(name: str | None, table: pa.Table, data: bytes) -> dict[str, Any]:
    """What the manifest records of a part (``table`` needs id, uri, bytes and payload)."""
    return {"file": name, "rows": table.num_rows, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest() if data else None,
            "input_bytes": int(pc.sum(table.column("bytes")).as_py() or 0),
            "payload_bytes": int(pc.sum(pc.binary_length(table.column("payload"))).as_py() or 0),
            "ids": table.column("id").to_pylist(), "uris": table.column("uri").to_pylist()}


def stage_part(batch: pa.Table, staging_url: str, schema_ipc: bytes, storage_options: dict[str, Any]) -> pa.Table:
    """Ray Data task: write the good rows of ``batch`` to staging; describe the part."""
    schema = pa.ipc.read_schema(pa.py_buffer(schema_ipc))
    failed = pc.is_valid(batch.column(ERROR_COLUMN))
    errors = []
    for r in batch.filter(failed).select(["uri", "sha256", "bytes", ERROR_COLUMN]).to_pylist():
        stage, _, reason = r[ERROR_COLUMN].partition(": ")
        errors.append({"uri": r["uri"], "sha256": r["sha256"], "bytes": r["bytes"], "stage": stage, "reason": reason})
    good = batch.filter(pc.invert(failed))
    quality = [json.loads(q) for q in good.column(QUALITY_COLUMN).to_pylist() if q]
    good = good.select(schema.names).cast(schema)
    name, data = None, b""
    if good.num_rows:
        buf = io.BytesIO()
        pq.write_table(good, buf, compression="zstd")
        data = buf.getvalue()
        name = part_name(good.column("id").to_pylist())
        staging = Location.of(staging_url, storage_options)
        with_retries(staging.fs.makedirs, staging.path, exist_ok=True, what="staging")
        with_retries(staging.fs.pipe_file, posixpath.join(staging.path, name), data, what="staging")
    row = {**describe_part(name, good, data), "errors": json.dumps(errors), "quality": json.dumps(quality)}
    return pa.Table.from_pylist([row], schema=DESCRIPTOR_SCHEMA)
