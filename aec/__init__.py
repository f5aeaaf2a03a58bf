"""aec's Python API: open an archive, query it with any Arrow tool, decode the rows you chose.

    import aec, duckdb
    archive = aec.open("demo-output/latents")            # or s3://bucket/latents, version=N
    latents = archive.dataset                            # a pyarrow Dataset of the committed rows
    chosen = duckdb.sql("SELECT id, key, shape, payload FROM latents WHERE bytes > 50000").arrow()
    for key, data in zip(chosen["key"].to_pylist(), archive.decode(chosen)):
        ...                                              # data: the restored file's bytes

``decode`` takes the rows a query returned (an Arrow table or record batch, a DuckDB relation, a
Polars frame) — with ``payload`` and ``shape`` columns, or only ``id`` (the payloads are then read
from the archive) — or a list of ids. The model comes from the registry the archive records
(a local one; pass ``registry=`` otherwise), checked against the bundle sha256 it was encoded with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

__all__ = ["Archive", "open"]


@dataclass
class Archive:
    """One version of a latents table, and a decoder for its rows."""

    url: str
    dataset: pds.Dataset
    metadata: dict[str, Any]
    version: int
    registry: str | None = None
    _compressor: Any = field(default=None, repr=False)
    _table: Any = field(default=None, repr=False)

    def decode(self, rows: Any) -> list[bytes]:
        """The restored bytes of each row, in order."""
        table = _as_arrow(rows)
        wanted = {"payload", "shape", "modality", "codec", "solid", "offset", "bytes", "sha256"} & set(self.dataset.schema.names)
        if not wanted <= set(table.column_names) and "id" in table.column_names:
            table = self._by_id(table.column("id"))  # what says how each row decodes, read from the archive
        from cluster.decode import decode_rows

        rows = table.to_pylist()
        for r in rows:  # rows from a query that left them out: the payload names a classic codec itself
            r.setdefault("modality", self.metadata.get("modality"))
        out = []
        for r, result in zip(rows, decode_rows(self._context(), rows)):
            if isinstance(result, Exception):
                raise ValueError(f"row {r.get('id') or r.get('key')}: {type(result).__name__}: {result}")
            out.append(result[0])
        return out

    def errors(self) -> list[dict[str, Any]]:
        """Inputs that could not be encoded (and are not committed since)."""
        return self._table.errors()

    def runs(self) -> list[dict[str, Any]]:
        return self._table.runs()

    def _by_id(self, ids: pa.ChunkedArray | pa.Array) -> pa.Table:
        wanted = pa.array(ids.to_pylist(), pa.string())
        columns = [c for c in ("id", "shape", "payload", "modality", "codec", "bytes", "sha256", "solid", "offset")
                   if c in self.dataset.schema.names]
        found = self.dataset.to_table(columns=columns, filter=pc.field("id").isin(wanted))
        order = {v: i for i, v in enumerate(found.column("id").to_pylist())}
        missing = [i for i in wanted.to_pylist() if i not in order]
        if missing:
            raise KeyError(f"{len(missing)} ids are not in {self.url} (version {self.version}), e.g. {missing[0]}")
        return found.take(pa.array([order[i] for i in wanted.to_pylist()]))

    def _context(self) -> Any:
        if self._compressor is None:
            from cluster.decode import dataset_decoders
            from jobs.models import dataset_models

            _, bundles = dataset_models(self.metadata, self.url, self.registry)
            self._compressor = dataset_decoders(self._table, bundles).context()
        return self._compressor


def open(dataset: str, version: int | None = None, registry: str | None = None,  # noqa: A001 - aec.open
         storage_options: dict[str, Any] | None = None) -> Archive:
    """The archive at ``dataset`` (a path or URL written by ``aec compress``), at ``version``."""
    from cluster.dataset import open_dataset
    from cluster.storage import Location

    ds = open_dataset(Location.of(dataset, storage_options), version=version)
    return Archive(url=ds.location.url, dataset=ds.dataset, metadata=ds.metadata, version=ds.version,
                   registry=registry, _table=ds)


def _as_arrow(rows: Any) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pa.RecordBatch):
        return pa.Table.from_batches([rows])
    if hasattr(rows, "arrow"):  # a DuckDB relation
        got = rows.arrow()
        return got if isinstance(got, pa.Table) else got.read_all()
    if hasattr(rows, "to_arrow"):  # a Polars frame
        return rows.to_arrow()
    if isinstance(rows, Sequence) and all(isinstance(r, str) for r in rows):
        return pa.table({"id": pa.array(list(rows), pa.string())})
    raise TypeError(f"decode takes an Arrow table, a DuckDB relation, a Polars frame or a list of ids, not "
                    f"{type(rows).__name__}")
