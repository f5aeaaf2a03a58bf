"""Restoring a latents dataset to files, and measuring it against the originals.

Each row is restored at its ``key`` (its path relative to the collection root) under the output
folder, so the restore gives back the archive's tree. A lossless row is the very file; a lossy
row whose input format differs from the modality's output format gets that format's suffix added
(``a/photo.jpg`` -> ``a/photo.jpg.png``, so no two rows meet at one name). A key that is absolute,
climbs out with ``..``, or resolves outside the folder through a link is an error row, never a
write. ``where`` (SQL over the dataset's columns, e.g. ``key LIKE 'a/%'``) restores a subset.

A row that cannot be restored (a truncated or corrupt payload, a header that disagrees with its
row or exceeds the modality's limits) is reported and skipped; every other row is restored. The
originals are read only under a root the caller names (``originals``), at the row's ``key``,
never from the ``uri`` a dataset claims, and at most the row's ``bytes``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aecore import Compressor, UnreadableInput
from aecore.errors import UserError
from cluster.dataset import LatentDataset
from cluster.storage import Location

__all__ = ["WhereError", "decode_dataset", "restore_path", "select_ids"]

_COLUMNS = ["id", "uri", "key", "bytes", "shape", "payload"]


def _plain_key(key: str | None) -> bool:
    """A key that is a plain relative path: not absolute, no ``.``/``..``/empty parts, no
    backslashes or NUL. Only such keys are read (originals) or written (restores)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        return False
    return not any(p in ("", ".", "..") for p in key.split("/"))


def restore_path(key: str | None, lossless: bool, output_suffix: str) -> str | None:
    """Where a row is restored, relative to the output folder; None for a key that is not a
    plain relative path (absolute, ``..``, backslashes, NUL, empty parts)."""
    if not _plain_key(key):
        return None
    if lossless or key.lower().endswith(output_suffix.lower()):
        return key
    return key + output_suffix


class WhereError(UserError, ValueError):
    """A ``where`` condition DuckDB cannot run (one line, with the columns it may use)."""


def select_ids(ds: LatentDataset, where: str) -> set[str]:
    """The ids of the rows ``where`` (DuckDB SQL over every column but the payload) selects."""
    import duckdb

    columns = [c for c in ds.dataset.schema.names if c != "payload"]
    latents = ds.dataset  # noqa: F841 - DuckDB scans it by name, reading only the columns the query uses
    try:
        ids = duckdb.sql(f"SELECT id FROM latents WHERE {where}").fetchall()
    except duckdb.Error as exc:
        raise WhereError(f"--where {where!r}: {str(exc).splitlines()[0]}; fix the condition "
                         f"(columns: {', '.join(columns)})") from None
    return {r[0] for r in ids}


def _write(out: Path, rel: str | None, data: bytes, written: set[str]) -> None:
    """Write ``data`` at ``out/rel``, refusing anything that would land outside ``out``."""
    if rel is None:
        raise ValueError("its key is not a relative path inside the collection; not written")
    target = out / rel
    if out not in target.resolve().parents:
        raise ValueError(f"{rel} resolves outside {out} (through a link); not written")
    if rel in written:
        raise ValueError(f"another row was already restored at {rel}; not written")
    target.parent.mkdir(parents=True, exist_ok=True)
    if out not in target.resolve().parents:
        raise ValueError(f"{rel} resolves outside {out} (through a link); not written")
    target.write_bytes(data)
    written.add(rel)


def decode_dataset(ds: LatentDataset, compressor: Compressor, out_dir: str | os.PathLike,
                   originals: Location | None = None, progress: Callable[[int], None] | None = None,
                   where: str | None = None) -> dict[str, Any]:
    """Write every restorable row's file under ``out_dir`` at its key (only the rows ``where``
    selects, if given); quality against the originals under ``originals`` when given. Bad rows
    are listed in ``failures``, never fatal."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    modality = compressor.modality
    selected = select_ids(ds, where) if where else None
    rows = 0
    failures: list[dict[str, str]] = []
    quality: list[dict[str, float]] = []
    unreachable = 0
    written: set[str] = set()
    for batch in ds.batches(_COLUMNS, batch_size=32):
        rows_in = [r for r in batch.to_pylist() if selected is None or r["id"] in selected]
        for row, result in zip(rows_in, _decode_rows(compressor, rows_in)):
            if isinstance(result, Exception):  # one bad row must not stop the restore
                reason = str(result).splitlines()[0] if str(result) else type(result).__name__
                failures.append({"id": row["id"], "uri": row["uri"], "reason": f"{type(result).__name__}: {reason}"[:300]})
                if progress:
                    progress(1)
                continue
            data, info = result
            try:
                _write(out, restore_path(row.get("key"), bool(info.get("lossless")), modality.output_suffix), data, written)
            except (OSError, ValueError) as exc:
                failures.append({"id": row["id"], "uri": row["uri"], "reason": f"{type(exc).__name__}: {exc}"[:300]})
                if progress:
                    progress(1)
                continue
            rows += 1
            if originals is not None:
                original = _read_original(originals, row["key"], row["bytes"])
                try:
                    if original is None:
                        raise UnreadableInput("unreachable")
                    quality.append(modality.quality(modality.load(original).x, modality.load(data).x))
                except UnreadableInput:
                    unreachable += 1
            if progress:
                progress(1)
    keys = sorted({k for q in quality for k in q})
    return {
        "rows": rows,
        "out": str(out),
        "failed": len(failures),
        "failures": failures,
        "compared": len(quality),
        "originals_unreachable": unreachable,
        "quality": {k: float(np.mean([q[k] for q in quality])) for k in keys},
    }


def _decode_rows(compressor: Compressor, rows: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, Any]] | Exception]:
    """Rows decoded together (a causal text coder steps the pieces of every row at once); if the
    batch fails, row by row, so a bad row costs only itself."""
    try:
        return [(data, info) for data, _, info in
                compressor.decode_many([r["payload"] for r in rows], [r["shape"] for r in rows])]
    except Exception:  # noqa: BLE001 - find the bad row(s) one by one
        out: list[tuple[bytes, dict[str, Any]] | Exception] = []
        for r in rows:
            try:
                data, _, info = compressor.decode(r["payload"], r["shape"])
                out.append((data, info))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out


def _read_original(root: Location, key: str | None, size: int) -> bytes | None:
    """The original at ``root/key``, only if ``key`` stays under ``root`` and the file is at
    most ``size`` bytes (the row's own record of it)."""
    if not _plain_key(key):
        return None
    path = posixpath.join(root.path, key)
    try:
        if root.is_local:
            real, real_root = os.path.realpath(path), os.path.realpath(root.path)
            if not real.startswith(real_root.rstrip("/") + "/") or not os.path.isfile(real):
                return None
            with open(real, "rb") as f:
                data = f.read(size + 1)
        else:
            with root.fs.open(path, "rb") as f:
                data = f.read(size + 1)
    except Exception:  # noqa: BLE001 - an unreachable original only means no comparison
        return None
    return data if len(data) <= size else None
