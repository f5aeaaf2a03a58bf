"""Timestamps aec writes (manifests, registry versions, catalog records, reports): UTC, ISO 8601."""

from __future__ import annotations

import time

__all__ = ["utc_now"]


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
