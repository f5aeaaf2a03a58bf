"""Timestamps aec writes (manifests, registry versions, catalog records, reports, job ids): UTC."""

from __future__ import annotations

import time

__all__ = ["ISO", "STAMP", "utc_now", "utc_text"]

#: ISO 8601, as every record aec writes holds times
ISO = "%Y-%m-%dT%H:%M:%SZ"
#: compact, sortable, for names (job ids, training runs)
STAMP = "%Y%m%dT%H%M%S"


def utc_text(seconds: float | None = None, fmt: str = ISO) -> str:
    """``seconds`` since the epoch (default: now) as UTC text in ``fmt``."""
    return time.strftime(fmt, time.gmtime(seconds))


def utc_now() -> str:
    return utc_text()
