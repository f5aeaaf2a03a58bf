"""Reading the inputs of a compress job, one file at a time, where a bad file is a row, not a crash.

``read_binary_files`` fails the whole read task when one file vanished after listing, and reads
whatever a path names — a FIFO blocks forever, ``/dev/zero`` never ends, a symbolic link may lead
out of the collection. Here each file is opened on its own: locally with ``O_NONBLOCK`` after
resolving links, and kept only if it is a regular file under the input root, read up to
``max_bytes``; anything else becomes a row with a one-line ``error``.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import pyarrow as pa

from cluster.storage import Location

__all__ = ["READ_SCHEMA", "read_inputs", "unencodable_name"]

READ_SCHEMA = pa.schema([("path", pa.string()), ("bytes", pa.binary()), ("read_error", pa.string())])


def unencodable_name(path: str) -> str | None:
    """Why a listed path cannot be carried as text (a name that is not valid UTF-8), or None."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8; rename it"
    return None


def printable(path: str) -> str:
    """A path as valid UTF-8 text (undecodable bytes as backslash escapes), for error rows."""
    return os.fsencode(path).decode("utf-8", "backslashreplace") if unencodable_name(path) else path


def _read_local(path: str, root: str, max_bytes: int) -> bytes:
    real = os.path.realpath(path)
    real_root = os.path.realpath(root)
    if not os.path.lexists(real):
        raise FileNotFoundError("dangling symbolic link" if os.path.islink(path) else "vanished after listing")
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise PermissionError("a symbolic link that leaves the input root; not read")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "FIFO" if stat.S_ISFIFO(mode) else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"
            raise PermissionError(f"not a regular file ({kind}); not read")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(max_bytes + 1)
    finally:
        os.close(fd)


def read_inputs(batch: pa.Table, root: str, storage_options: dict[str, Any], max_bytes: int) -> pa.Table:
    """Ray Data task: ``path`` -> ``path, bytes, read_error``."""
    loc = Location.of(root, storage_options)
    paths = batch.column("path").to_pylist()
    data: list[bytes | None] = []
    errors: list[str | None] = []
    fs = None if loc.is_local else loc.pyarrow_fs()
    for path in paths:
        try:
            if fs is None:
                blob = _read_local(path, loc.path, max_bytes)
            else:
                with fs.open_input_stream(path) as f:
                    blob = f.read(max_bytes + 1)
            if len(blob) > max_bytes:
                raise ValueError(f"file exceeds max_file_bytes={max_bytes}; raise it in the spec")
        except FileNotFoundError as exc:
            data.append(None)
            errors.append(f"read: {exc.args[-1] if exc.args and isinstance(exc.args[-1], str) else 'vanished after listing'}")
        except (OSError, ValueError) as exc:
            reason = exc.args[0] if isinstance(exc, PermissionError | ValueError) and exc.args else type(exc).__name__
            data.append(None)
            errors.append(f"read: {reason}")
        else:
            data.append(blob)
            errors.append(None)
    return pa.table({"path": paths, "bytes": pa.array(data, pa.binary()), "read_error": pa.array(errors, pa.string())},
                    schema=READ_SCHEMA)
