"""Reading what a compress job committed, the way the library reads it (cluster.dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cluster.dataset import LatentDataset, open_dataset
from cluster.storage import Location


def dataset(path: str | Path, storage_options: dict[str, Any] | None = None) -> LatentDataset:
    return open_dataset(Location.of(str(path), storage_options))


def totals(path: str | Path, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    return dataset(path, storage_options).totals()


def errors(path: str | Path, storage_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return dataset(path, storage_options).errors()


def last_run(path: str | Path, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    return dataset(path, storage_options).runs()[-1]
