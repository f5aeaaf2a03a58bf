"""Where collections, datasets and the registry live: any fsspec URL or local path.

fsspec (s3fs for ``s3://``) does listing and small metadata; bulk reads go through a
pyarrow filesystem — pyarrow's native S3 client where the URL is ``s3://`` (much faster
than s3fs for bulk reads, apache/arrow#34414), an fsspec wrapper otherwise.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow.fs as pafs
from fsspec.core import url_to_fs

__all__ = ["Location", "StorageError", "list_collection"]


class StorageError(RuntimeError):
    """A storage problem a user can fix; the message is one line and names the fix."""


@dataclass(frozen=True)
class Location:
    """A URL resolved to a filesystem plus a path on it."""

    url: str
    fs: fsspec.AbstractFileSystem
    path: str

    @classmethod
    def of(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Location:
        url = str(url)
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        try:
            fs, path = url_to_fs(url, **dict(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise StorageError(f"cannot open {url!r}: {exc}; check the URL scheme") from None
        return cls(url=url, fs=fs, path=path.rstrip("/") or path)

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def join(self, *parts: str) -> Location:
        sep_url = self.url.rstrip("/")
        return Location(url="/".join([sep_url, *parts]), fs=self.fs, path=posixpath.join(self.path, *parts))

    def uri(self, path: str) -> str:
        """A full URI for a path on this location's filesystem."""
        return path if self.is_local else f"{_protocols(self.fs)[0]}://{path}"

    def pyarrow_fs(self) -> pafs.FileSystem:
        if self.is_local:
            return pafs.LocalFileSystem()
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def list_collection(loc: Location, extensions: Iterable[str]) -> list[str]:
    """Sorted paths of the files under ``loc`` whose suffix is one of ``extensions``."""
    try:
        if not loc.fs.exists(loc.path):
            raise StorageError(f"input {loc.url!r} does not exist; check the path or URL (and credentials for object storage)")
        if loc.fs.isfile(loc.path):
            found = [loc.path]
        else:
            found = loc.fs.find(loc.path)
    except PermissionError:
        raise StorageError(f"input {loc.url!r} is not readable: permission denied; check credentials") from None
    exts = tuple(e.lower() for e in extensions)
    files = sorted(p for p in found if p.lower().endswith(exts) and not posixpath.basename(p).startswith("."))
    if not files:
        raise StorageError(
            f"input {loc.url!r} holds no files ending in {', '.join(exts)}; point input at a folder of such files"
        )
    return files
