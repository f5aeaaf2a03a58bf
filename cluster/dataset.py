"""Reading a committed latents table: deltalake and pyarrow, no Ray needed.

Everything here reads one table version (the latest, or one named with ``version``): its rows
through pyarrow, its metadata from the table's properties, its run history from the commit log,
its input errors from the errors table.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from cluster.storage import Location, StorageError, with_retries
from cluster.table import ERRORS_TABLE, REPORT_HTML, REPORT_JSON, REPORT_PNG, arrow_dataset, load_table, read_properties

__all__ = ["LatentDataset", "open_dataset"]


@dataclass(frozen=True)
class LatentDataset:
    location: Location
    table: Any  # deltalake.DeltaTable at the version read
    metadata: dict[str, Any]
    dataset: pds.Dataset

    @property
    def version(self) -> int:
        return self.table.version()

    def batches(self, columns: list[str], batch_size: int = 64) -> Iterator[pa.RecordBatch]:
        present = [c for c in columns if c in self.dataset.schema.names]
        return self.dataset.to_batches(columns=present, batch_size=batch_size)

    def count_rows(self) -> int:
        return self.dataset.count_rows()

    def totals(self, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Rows, bytes in and out, ratio and mean quality of the rows in this version (``errors``:
        :meth:`errors`, if the caller has it already)."""
        table = self.dataset.to_table(columns=["bytes", "payload_bytes"])
        input_bytes = int(pc.sum(table.column("bytes")).as_py() or 0)
        payload_bytes = int(pc.sum(table.column("payload_bytes")).as_py() or 0)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        measured = self.dataset.to_table(columns=["quality"], filter=pc.field("quality").is_valid())
        for q in measured.column("quality").to_pylist():
            for k, v in json.loads(q).items():
                if not isinstance(v, (int, float)):  # quality records are numbers; anything else is no mean
                    continue
                sums[k] = sums.get(k, 0.0) + v
                counts[k] = counts.get(k, 0) + 1
        sizes = pa.table(self.table.get_add_actions(flatten=True)).column("size_bytes")
        stored = self.stored_bytes()
        return {"rows": table.num_rows, "errors": len(self.errors() if errors is None else errors), "input_bytes": input_bytes,
                "payload_bytes": payload_bytes, "parquet_bytes": int(pc.sum(sizes).as_py() or 0),
                "stored_bytes": stored, "ratio": input_bytes / stored if stored else None,
                "payload_ratio": input_bytes / payload_bytes if payload_bytes else None,
                "quality": {k: sums[k] / counts[k] for k in sums}}

    def stored_bytes(self) -> int:
        """Every byte the dataset holds on storage: its parts (old versions' and uncommitted ones
        too, until vacuum), the transaction log, the errors table, dictionaries and the report."""
        found = with_retries(self.location.fs.find, self.location.path, detail=True, what=f"dataset {self.location.url!r}")
        return int(sum(int(info.get("size") or 0) for info in found.values() if info.get("type", "file") == "file"))

    def breakdown(self) -> list[dict[str, Any]]:
        """Files and bytes per modality and codec: what each codec won, in files and in bytes."""
        names = self.dataset.schema.names
        columns = [c for c in ("modality", "codec", "bytes", "payload_bytes", "solid") if c in names]
        table = self.dataset.to_table(columns=columns)
        if "codec" not in names:
            table = table.append_column("codec", pa.array([self.metadata.get("codec") or ""] * table.num_rows))
        if "solid" in names:  # a block's payload shared among its files by their sizes (it sits in one row)
            table = _share_blocks(table)
        grouped = table.group_by(["modality", "codec"]).aggregate([("bytes", "count"), ("bytes", "sum"),
                                                                  ("payload_bytes", "sum")])
        rows = [{"modality": r["modality"], "codec": r["codec"], "files": r["bytes_count"], "bytes": r["bytes_sum"],
                 "payload_bytes": r["payload_bytes_sum"]} for r in grouped.to_pylist()]
        return sorted(rows, key=lambda r: (r["modality"], -r["bytes"]))

    def errors(self) -> list[dict[str, Any]]:
        """Inputs that could not be encoded and are not committed since: the latest error per uri."""
        errors = load_table(self.location.join(*ERRORS_TABLE.split("/")))
        if errors is None:
            return []
        rows = errors.to_pyarrow_table()
        if not rows.num_rows:
            return []
        committed = self.dataset.to_table(columns=["uri"], filter=pc.field("uri").isin(
            pc.unique(rows.column("uri")))).column("uri")
        latest: dict[str, dict[str, Any]] = {}
        for e in rows.filter(pc.invert(pc.is_in(rows.column("uri"), value_set=committed.combine_chunks()))).to_pylist():
            if e["uri"] not in latest or e["at"] >= latest[e["uri"]]["at"]:
                latest[e["uri"]] = e
        return sorted(latest.values(), key=lambda e: e["uri"])

    def runs(self) -> list[dict[str, Any]]:
        """The compress runs in the table's history (oldest first), each with the table versions it
        committed. The history covers the log's retention (Delta's default: 30 days)."""
        by_run: dict[str, dict[str, Any]] = {}
        for commit in reversed(self.table.history()):
            run_id = commit.get("aec.run_id")
            if not run_id:
                continue
            run = by_run.setdefault(run_id, {"run_id": run_id, "status": "running or stopped", "versions": [],
                                             "rows": 0})
            if "aec.run" in commit:
                run.update(json.loads(commit["aec.run"]))
            elif "aec.rows" in commit:
                run["versions"].append(commit["version"])
                run["rows_committed"] = run.get("rows_committed", 0) + int(commit["aec.rows"])
            elif "aec.operation" in commit:
                run["operation"] = commit["aec.operation"]
        return list(by_run.values())

    def summary(self) -> dict[str, Any]:
        totals = self.totals()
        return {
            "dataset": self.location.url,
            "version": self.version,
            "rows": totals["rows"],
            "errors": totals["errors"],
            "runs": len(self.runs()),
            "modality": self.metadata.get("modality"),
            "model": self.metadata.get("model_ref"),
            "codec": self.metadata.get("codec"),
            "latent_shape": self.metadata.get("latent_shape"),
            **{k: totals[k] for k in ("input_bytes", "payload_bytes", "parquet_bytes", "stored_bytes")},
            "ratio (input / on disk)": totals["ratio"],
            "quality": totals["quality"],
            **self.report_summary(),
        }

    def report_summary(self) -> dict[str, Any]:
        """The last job report's headline figures and where the report is (if one was written)."""
        path = posixpath.join(self.location.path, REPORT_JSON)
        try:
            report = json.loads(self.location.fs.cat_file(path))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        rd = report.get("rate_distortion", {})
        picture = self.location.join(REPORT_PNG)
        return {
            "throughput (last run)": f"{report['throughput']['rows_per_second']:.1f} rows/s, "
                                     f"{report['throughput'].get('input_mb_per_second', 0):.2f} MB/s",
            "rate–distortion (sample)": rd.get("aec", {}),
            "report": self.location.join(REPORT_HTML).url,
            # an archive's report has no picture (its tables are the story)
            **({"report picture": picture.url} if self.location.fs.exists(picture.path) else {}),
        }


def open_dataset(loc: Location, version: int | None = None) -> LatentDataset:
    """The aec table at ``loc`` (at ``version``; default the latest)."""
    table = with_retries(load_table, loc, version, what=f"dataset {loc.url!r}")
    if table is None:
        raise StorageError(f"{loc.url!r} is not an aec dataset (no Delta table there); check the path")
    metadata = read_properties(table)
    if not metadata:
        raise StorageError(f"{loc.url!r} is a Delta table aec did not write (or a version before aec set its "
                           "properties); open another")
    return LatentDataset(location=loc, table=table, metadata=metadata, dataset=arrow_dataset(table, loc))


def _share_blocks(table: pa.Table) -> pa.Table:
    """``payload_bytes`` of each file of a solid block: the block's payload times the file's share
    of the block's input bytes (every other row as it is)."""
    import pyarrow.compute as pc

    blocks = table.filter(pc.is_valid(table.column("solid"))).group_by("solid").aggregate(
        [("bytes", "sum"), ("payload_bytes", "sum")])
    if not blocks.num_rows:
        return table
    joined = table.join(blocks, "solid", join_type="left outer")
    shared = pc.if_else(pc.is_valid(joined.column("solid")), pc.cast(pc.round(pc.divide(
        pc.multiply(pc.cast(joined.column("bytes"), pa.float64()), pc.cast(joined.column("payload_bytes_sum"), pa.float64())),
        pc.max_element_wise(pc.cast(joined.column("bytes_sum"), pa.float64()), 1.0))), pa.int64()),
        joined.column("payload_bytes"))
    return joined.set_column(joined.schema.get_field_index("payload_bytes"), "payload_bytes", shared)
