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

__all__ = ["READ_SCHEMA", "TREE_SCHEMA", "read_inputs", "read_tree", "unencodable_name"]

READ_SCHEMA = pa.schema([("path", pa.string()), ("bytes", pa.binary()), ("read_error", pa.string())])
#: what a tree read adds: the entry's kind (file, symlink, dir), a link's target, mode and mtime
TREE_SCHEMA = pa.schema([*READ_SCHEMA, ("entry", pa.string()), ("link", pa.string()), ("mode", pa.int32()),
                         ("mtime_ns", pa.int64())])


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


def _entry(path: str) -> tuple[str, str | None, int | None, int | None]:
    """``(entry, link target, mode, mtime_ns)`` of a local path, links not followed."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return "symlink", os.readlink(path), stat.S_IMODE(st.st_mode), st.st_mtime_ns
    if stat.S_ISDIR(st.st_mode):
        return "dir", None, stat.S_IMODE(st.st_mode), st.st_mtime_ns
    return "file", None, stat.S_IMODE(st.st_mode), st.st_mtime_ns


def read_tree(batch: pa.Table, root: str, storage_options: dict[str, Any], max_bytes: int) -> pa.Table:
    """Ray Data task of an archive: ``read_inputs``, and each entry as tar keeps it — links as
    links (their target, never followed), folders as folders, modes and mtimes of every entry."""
    loc = Location.of(root, storage_options)
    paths = batch.column("path").to_pylist()
    if not loc.is_local:
        read = read_inputs(batch, root, storage_options, max_bytes)
        n = read.num_rows
        return pa.table([*read.columns, pa.array(["file"] * n), pa.nulls(n, pa.string()), pa.nulls(n, pa.int32()),
                         pa.nulls(n, pa.int64())], schema=TREE_SCHEMA)
    entries: list[tuple[str, str | None, int | None, int | None]] = []
    for path in paths:
        try:
            entries.append(_entry(path))
        except OSError:
            entries.append(("file", None, None, None))  # vanished: the read says so in its error row
    files = [p for p, e in zip(paths, entries) if e[0] == "file"]
    read = read_inputs(pa.table({"path": pa.array(files, pa.string())}), root, storage_options, max_bytes).to_pylist()
    by_path = {r["path"]: r for r in read}
    rows = []
    for path, (entry, link, mode, mtime) in zip(paths, entries):
        r = by_path.get(path) if entry == "file" else {"path": path, "bytes": b"", "read_error": None}
        rows.append({**r, "entry": entry, "link": link, "mode": mode, "mtime_ns": mtime})
    return pa.Table.from_pylist(rows, schema=TREE_SCHEMA)


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
