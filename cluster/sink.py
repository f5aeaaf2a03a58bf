"""Writing a compress job's output: latent rows to Parquet, error rows to JSON lines,
published only when the whole write has succeeded.

Write tasks stream their rows into Parquet files in a staging folder beside the output
(never inside it, so ``OUTPUT/**/*.parquet`` never matches a half-written file). When
every task is done, the driver moves the files in, then writes the manifest last.

Dataset layout::

    OUTPUT/part-<run>-<task>.parquet   latent rows (schema: cluster.schema)
    OUTPUT/_aec/manifest.json          files, row counts, checksums, summary
    OUTPUT/_aec/errors.jsonl           one line per input that could not be encoded
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from ray.data import Datasink
from ray.data.block import Block
from ray.data.datasource.datasink import WriteResult

from cluster.encode import ERROR_COLUMN, QUALITY_COLUMN
from cluster.storage import Location

__all__ = ["LatentDatasink", "MANIFEST", "ERRORS", "META_DIR"]

META_DIR = "_aec"
MANIFEST = f"{META_DIR}/manifest.json"
ERRORS = f"{META_DIR}/errors.jsonl"


@dataclass
class LatentDatasink(Datasink[dict]):
    output: Location
    staging: Location
    schema: pa.Schema
    run_id: str
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    replace: bool = False  # drop a previously committed dataset at commit time
    summary: dict[str, Any] | None = None

    def on_write_start(self, schema: pa.Schema | None = None) -> None:
        self.staging.fs.makedirs(self.staging.path, exist_ok=True)

    def write(self, blocks: Iterable[Block], ctx: Any) -> dict:
        name = f"part-{self.run_id}-{ctx.task_idx:05d}.parquet"
        rows = payload_bytes = input_bytes = 0
        errors: list[dict] = []
        quality: list[dict] = []
        buf = io.BytesIO()
        writer = pq.ParquetWriter(buf, self.schema, compression="zstd")
        for block in blocks:
            table = block if isinstance(block, pa.Table) else pa.Table.from_pandas(block)
            failed = pc.is_valid(table.column(ERROR_COLUMN))
            for r in table.filter(failed).select(["uri", "sha256", "bytes", ERROR_COLUMN]).to_pylist():
                stage, _, reason = r[ERROR_COLUMN].partition(": ")
                errors.append({"uri": r["uri"], "sha256": r["sha256"], "bytes": r["bytes"], "stage": stage,
                               "reason": reason})
            good = table.filter(pc.invert(failed))
            quality += [json.loads(q) for q in good.column(QUALITY_COLUMN).to_pylist() if q]
            good = good.select(self.schema.names).cast(self.schema)
            if good.num_rows:
                writer.write_table(good)
                rows += good.num_rows
                payload_bytes += int(pc.sum(pc.binary_length(good.column("payload"))).as_py() or 0)
                input_bytes += int(pc.sum(good.column("bytes")).as_py() or 0)
        writer.close()
        result = {"file": None, "rows": rows, "payload_bytes": payload_bytes, "input_bytes": input_bytes,
                  "errors": errors, "quality": quality}
        if rows:
            data = buf.getvalue()
            with self.staging.fs.open(posixpath.join(self.staging.path, name), "wb") as f:
                f.write(data)
            result["file"] = {"name": name, "rows": rows, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        return result

    def on_write_complete(self, write_result: WriteResult[dict]) -> None:
        parts = [r for r in write_result.write_returns if r]
        files = [p["file"] for p in parts if p["file"]]
        fs = self.output.fs
        if self.replace and fs.exists(self.output.path):
            # The old dataset goes only now that the new one is fully written.
            fs.rm(self.output.path, recursive=True)
        fs.makedirs(posixpath.join(self.output.path, META_DIR), exist_ok=True)
        for f in files:
            fs.mv(posixpath.join(self.staging.path, f["name"]), posixpath.join(self.output.path, f["name"]))
        errors = [e for p in parts for e in p["errors"]]
        quality = [q for p in parts for q in p["quality"]]
        rows = sum(p["rows"] for p in parts)
        input_bytes = sum(p["input_bytes"] for p in parts)
        payload_bytes = sum(p["payload_bytes"] for p in parts)
        self.summary = {
            "rows": rows,
            "errors": len(errors),
            "input_bytes": input_bytes,
            "payload_bytes": payload_bytes,
            "parquet_bytes": sum(f["size"] for f in files),
            "ratio": input_bytes / payload_bytes if payload_bytes else None,
            "quality": _mean_quality(quality),
            "quality_sample": len(quality),
        }
        with fs.open(posixpath.join(self.output.path, ERRORS), "w") as f:
            f.writelines(json.dumps(e) + "\n" for e in errors)
        manifest = {"format": "aec-dataset/1", "run_id": self.run_id, "files": files, **self.summary,
                    **self.manifest_extra}
        # The manifest is written last: a dataset without one is not committed.
        with fs.open(posixpath.join(self.output.path, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        self._cleanup()

    def on_write_failed(self, error: Exception) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        try:
            self.staging.fs.rm(self.staging.path, recursive=True)
        except FileNotFoundError:
            pass


def _mean_quality(quality: list[dict]) -> dict[str, float]:
    keys = sorted({k for q in quality for k in q})
    return {k: sum(q[k] for q in quality if k in q) / sum(1 for q in quality if k in q) for k in keys}
