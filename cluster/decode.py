"""Restoring a latents dataset to files, and measuring it against the originals."""

from __future__ import annotations

import os
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
                   compare: bool = True, progress: Callable[[int], None] | None = None,
                   storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write every row's restored file under ``out_dir``; PSNR etc. against reachable originals."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    modality = compressor.modality
    rows = 0
    quality: list[dict[str, float]] = []
    unreachable = 0
    for batch in ds.dataset.to_batches(columns=["id", "uri", "payload"], batch_size=64):
        for rid, uri, payload in zip(*(batch.column(c).to_pylist() for c in ("id", "uri", "payload"))):
            data, _, info = compressor.decode(payload)
            target = (out / safe_name(rid, uri, _suffix(uri, info, modality.output_suffix))).resolve()
            if target.parent != out:  # belt and braces: safe_name already forbids separators
                raise ValueError(f"refusing to write outside {out}: {target}")
            target.write_bytes(data)
            rows += 1
            if compare:
                original = _read_original(uri, storage_options)
                if original is None:
                    unreachable += 1
                else:
                    try:
                        quality.append(modality.quality(modality.load(original).x, modality.load(data).x))
                    except UnreadableInput:
                        unreachable += 1
            if progress:
                progress(1)
    keys = sorted({k for q in quality for k in q})
    return {
        "rows": rows,
        "out": str(out),
        "compared": len(quality),
        "originals_unreachable": unreachable,
        "quality": {k: float(np.mean([q[k] for q in quality])) for k in keys},
    }


def _read_original(uri: str, storage_options: dict[str, Any] | None) -> bytes | None:
    try:
        loc = Location.of(uri, storage_options)
        return loc.fs.cat_file(loc.path)
    except Exception:  # noqa: BLE001 - an unreachable original only means no comparison
        return None
