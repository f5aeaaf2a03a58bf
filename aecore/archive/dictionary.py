"""The collection's zstd dictionary: trained once per table on a sample of its small files, stored
once beside the table, so coding file by file keeps much of what a solid archive gains across
many small similar files."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DICTIONARY_BYTES", "train_dictionary"]

DICTIONARY_BYTES = 112 * 1024
_MIN_SAMPLES = 8


def train_dictionary(samples: Sequence[bytes], size: int = DICTIONARY_BYTES) -> bytes | None:
    """A zstd dictionary from ``samples`` (None when there are too few, or too little text in them
    for one to pay: a dictionary costs its own bytes once per table)."""
    import zstandard

    samples = [s for s in samples if s]
    total = sum(len(s) for s in samples)
    if len(samples) < _MIN_SAMPLES or total < 8 * 1024:
        return None
    size = min(size, max(4096, total // 8))
    try:
        return zstandard.train_dictionary(size, list(samples), level=19).as_bytes()
    except zstandard.ZstdError:
        return None
