"""Restoring a latents dataset to files, and measuring it against the originals.

A row that cannot be restored (a truncated or corrupt payload, a header that disagrees with its
row or exceeds the modality's limits) is reported and skipped; every other row is restored. The
originals are read only under a root the caller names (``originals``), at the row's ``key``,
never from the ``uri`` a dataset claims, and at most the row's ``bytes``.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aecore import Compressor, UnreadableInput
from cluster.dataset import LatentDataset
from cluster.storage import Location

__all__ = ["decode_dataset", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_COLUMNS = ["id", "uri", "key", "bytes", "shape", "payload"]


def safe_name(row_id: str, uri: str, suffix: str) -> str:
    """``<id>-<stem><suffix>``: only ``[A-Za-z0-9._-]``, so no uri can escape the folder."""
    stem = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = _UNSAFE.sub("_", stem).strip("._")[:64]
    return f"{row_id}-{stem}{suffix}" if stem else f"{row_id}{suffix}"


def _suffix(uri: str, info: dict[str, Any], default: str) -> str:
    """A lossless row restores the very file, so it keeps its own extension; a lossy one is
    written in the modality's output format."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    ext = "." + name.rsplit(".", 1)[-1] if "." in name.strip(".") else ""
    return _UNSAFE.sub("_", ext)[:16] if info.get("lossless") and ext else default


def decode_dataset(ds: LatentDataset, compressor: Compressor, out_dir: str | os.PathLike,
                   originals: Location | None = None, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write every restorable row's file under ``out_dir``; quality against the originals under
    ``originals`` when given. Bad rows are listed in ``failures``, never fatal."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    modality = compressor.modality
    rows = 0
    failures: list[dict[str, str]] = []
    quality: list[dict[str, float]] = []
    unreachable = 0
    for batch in ds.batches(_COLUMNS, batch_size=32):
        rows_in = batch.to_pylist()
        for row, result in zip(rows_in, _decode_rows(compressor, rows_in)):
            if isinstance(result, Exception):  # one bad row must not stop the restore
                reason = str(result).splitlines()[0] if str(result) else type(result).__name__
                failures.append({"id": row["id"], "uri": row["uri"], "reason": f"{type(result).__name__}: {reason}"[:300]})
                if progress:
                    progress(1)
                continue
            data, info = result
            try:
                target = (out / safe_name(row["id"], row["uri"], _suffix(row["uri"], info, modality.output_suffix))).resolve()
                if target.parent != out:  # belt and braces: safe_name already forbids separators
                    raise ValueError(f"refusing to write outside {out}")
                target.write_bytes(data)
            except (OSError, ValueError) as exc:
                failures.append({"id": row["id"], "uri": row["uri"], "reason": f"{type(exc).__name__}: {exc}"[:300]})
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
    if not key or key.startswith("/") or "\\" in key:
        return None
    norm = posixpath.normpath(key)
    if norm == ".." or norm.startswith("../"):
        return None
    path = posixpath.join(root.path, norm)
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
