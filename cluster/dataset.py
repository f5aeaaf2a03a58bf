"""Reading a committed latents dataset: plain pyarrow, no Ray needed."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from cluster.commit import ERRORS, MANIFEST
from cluster.schema import read_metadata
from cluster.storage import Location, StorageError, storage_error, with_retries

__all__ = ["LatentDataset", "open_dataset"]


@dataclass(frozen=True)
class LatentDataset:
    location: Location
    manifest: dict[str, Any]
    metadata: dict[str, Any]
    dataset: pds.Dataset | None  # None: no row committed yet (e.g. every input was an error)

    def batches(self, columns: list[str], batch_size: int = 64) -> Iterator[pa.RecordBatch]:
        if self.dataset is None:
            return iter(())
        present = [c for c in columns if c in self.dataset.schema.names]
        return self.dataset.to_batches(columns=present, batch_size=batch_size)

    def count_rows(self) -> int:
        return self.dataset.count_rows() if self.dataset is not None else 0

    def summary(self) -> dict[str, Any]:
        rows, input_bytes, payload_bytes = 0, 0, 0
        if self.dataset is not None:
            table = self.dataset.to_table(columns=["bytes", "payload"])
            rows = table.num_rows
            input_bytes = int(pc.sum(table.column("bytes")).as_py() or 0)
            payload_bytes = int(pc.sum(pc.binary_length(table.column("payload"))).as_py() or 0)
        return {
            "dataset": self.location.url,
            "rows": rows,
            "errors": self.manifest.get("errors", 0),
            "runs": len(self.manifest.get("runs", [])),
            "modality": self.metadata.get("modality"),
            "model": self.metadata.get("model_ref"),
            "codec": self.metadata.get("codec"),
            "latent_shape": self.metadata.get("latent_shape"),
            "input_bytes": input_bytes,
            "payload_bytes": payload_bytes,
            "parquet_bytes": sum(f["size"] for f in self.manifest.get("files", [])),
            "ratio": input_bytes / payload_bytes if payload_bytes else None,
            "quality": self.manifest.get("quality", {}),
            "errors_file": self.location.join(ERRORS).url,
            **self.report_summary(),
        }

    def report_summary(self) -> dict[str, Any]:
        """The last job report's headline figures and where the report is (if one was written)."""
        from cluster.report import REPORT_HTML, REPORT_JSON, REPORT_PNG

        path = posixpath.join(self.location.path, REPORT_JSON)
        try:
            report = json.loads(self.location.fs.cat_file(path))
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        rd = report.get("rate_distortion", {})
        return {
            "throughput (last run)": f"{report['throughput']['rows_per_second']:.1f} rows/s, "
                                     f"{report['throughput'].get('input_mb_per_second', 0):.2f} MB/s",
            "rate–distortion (sample)": rd.get("aec", {}),
            "report": self.location.join(REPORT_HTML).url,
            "report picture": self.location.join(REPORT_PNG).url,
        }


def open_dataset(loc: Location) -> LatentDataset:
    manifest_path = posixpath.join(loc.path, MANIFEST)
    try:
        if not with_retries(loc.fs.exists, manifest_path, what=f"dataset {loc.url!r}"):
            raise StorageError(f"{loc.url!r} is not a committed aec dataset (no {MANIFEST}); check the path")
        manifest = json.loads(with_retries(loc.fs.cat_file, manifest_path, what=f"dataset {loc.url!r}"))
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, no secrets
        raise storage_error(exc, loc.url, "dataset") from None
    files = [posixpath.join(loc.path, f["name"]) for f in manifest["files"]]
    # Exactly the files the manifest commits, never a stray file that happens to lie there.
    dataset = pds.dataset(files, format="parquet", filesystem=loc.pyarrow_fs()) if files else None
    metadata = read_metadata(dataset.schema) if dataset is not None else manifest.get("metadata", {})
    return LatentDataset(location=loc, manifest=manifest, metadata=metadata, dataset=dataset)
