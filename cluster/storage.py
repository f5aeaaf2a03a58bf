"""Where collections, datasets and the registry live: any fsspec URL or local path.

fsspec (s3fs for ``s3://``) does listing and small metadata; bulk reads go through a
pyarrow filesystem — pyarrow's native S3 client for ``s3://`` (much faster than s3fs for
bulk reads, apache/arrow#34414), an fsspec wrapper for other schemes.

Endpoints and credentials come from ``storage_options`` (s3fs's names: ``endpoint_url``,
``key``, ``secret``, ``token``) or the standard variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``).
They are never part of a URL, a log line, an error message or any metadata ``aec`` writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import fsspec
import pyarrow.fs as pafs
from fsspec.core import url_to_fs
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

from aecore.errors import UserError

__all__ = ["InputFile", "Location", "StorageError", "check_writable", "create_exclusive", "list_collection", "relative_key",
           "storage_error", "with_retries"]

T = TypeVar("T")



def retry_seconds() -> float:
    """How long a vanished endpoint is waited for before a job gives up cleanly."""
    return float(os.environ.get("AEC_STORAGE_RETRY_SECONDS", "60"))


class StorageError(UserError, RuntimeError):
    """A storage problem a user can fix; the message is one line and names the fix."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError | FileExistsError | PermissionError | IsADirectoryError | NotADirectoryError
                  | StorageError):
        return False
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return False  # a full disk or a read-only store: retrying cannot help, and says so below
    name = type(exc).__name__
    return isinstance(exc, ConnectionError | TimeoutError | OSError) or name in {
        "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
        "ServerDisconnectedError", "ClientOSError", "ConnectionClosedError",
    }


def with_retries(fn: Callable[..., T], *args: Any, what: str = "storage", **kwargs: Any) -> T:
    """Call ``fn``, retrying transient connection errors with exponential backoff
    (0.25 s doubling to 4 s, up to ``AEC_STORAGE_RETRY_SECONDS``); then a clean one-line failure."""
    limit = retry_seconds()
    call = retry(
        retry=retry_if_exception(_transient),
        wait=wait_exponential(multiplier=0.25, max=4),
        stop=stop_after_delay(limit),
        reraise=True,
    )(fn)
    try:
        return call(*args, **kwargs)
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"{what}: no space left on the device; free some space, then re-run: "
                               "committed work is kept") from None
        if _transient(exc):
            raise StorageError(f"{what} unreachable for {limit:.0f} s ({type(exc).__name__}); "
                               "check the endpoint and network, then re-run: committed work is kept") from None
        raise


def storage_error(exc: BaseException, url: str, role: str, loc: Location | None = None) -> StorageError:
    """A one-line, secret-free error for a failed storage call on ``url`` (``role``: input/output/registry)."""
    text = f"{type(exc).__name__} {exc} {exc.__cause__!r}"
    if loc is not None and isinstance(exc, PermissionError) and not loc.is_local:
        # A bare 403 (HEAD has no body) does not say why; a listing of the bucket does.
        try:
            loc.fs.ls(loc.path.split("/", 1)[0], refresh=True)
        except Exception as probe:  # noqa: BLE001
            text += f" {probe} {probe.__cause__!r}"
    if any(s in text for s in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "NoCredentials", "ExpiredToken",
                               "InvalidToken", "Unable to locate credentials")):
        return StorageError(f"{role} {url!r}: credentials were refused; check AWS_ACCESS_KEY_ID / "
                            "AWS_SECRET_ACCESS_KEY or the spec's storage_options")
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return StorageError(f"{role} {url!r}: permission denied; check the credentials and the bucket policy")
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
        return StorageError(f"{role} {url!r} does not exist; check the path or URL")
    return StorageError(f"{role} {url!r}: {type(exc).__name__}; check the URL, endpoint and credentials")


def _s3_options(options: Mapping[str, Any]) -> dict[str, Any]:
    opts = dict(options)
    if "endpoint_url" not in opts and os.environ.get("AWS_ENDPOINT_URL"):
        opts["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
    return opts


@dataclass(frozen=True)
class Location:
    """A URL resolved to a filesystem plus a path on it."""

    url: str
    fs: fsspec.AbstractFileSystem = field(repr=False)
    path: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> Location:
        url = str(url)
        if "://" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        options = dict(storage_options or {})
        if url.startswith(("s3://", "s3a://")):
            options = _s3_options(options)
        try:
            fs, path = url_to_fs(url, **options)
        except (ImportError, ValueError, TypeError) as exc:
            raise StorageError(f"cannot open {url!r} ({type(exc).__name__}); check the URL scheme and storage_options") from None
        return cls(url=url.rstrip("/") if len(url) > 1 else url, fs=fs, path=path.rstrip("/") or path,
                   storage_options=options)

    @property
    def protocol(self) -> str:
        proto = self.fs.protocol
        return proto if isinstance(proto, str) else proto[0]

    @property
    def is_local(self) -> bool:
        return self.protocol in ("file", "local")

    def join(self, *parts: str) -> Location:
        return Location(url="/".join([self.url.rstrip("/"), *parts]), fs=self.fs,
                        path=posixpath.join(self.path, *parts), storage_options=self.storage_options)

    def sibling(self, name: str) -> Location:
        parent_url, parent_path = self.url.rsplit("/", 1)[0], posixpath.dirname(self.path)
        return Location(url=f"{parent_url}/{name}", fs=self.fs, path=posixpath.join(parent_path, name),
                        storage_options=self.storage_options)

    def key(self, path: str) -> str:
        """A file's key under this location (its path relative to the location's root)."""
        return relative_key(path, self.path)

    def uri(self, path: str) -> str:
        """A full URI for a path on this location's filesystem."""
        return path if self.is_local else f"{self.protocol}://{path}"

    def pyarrow_fs(self) -> pafs.FileSystem:
        """A pyarrow filesystem for bulk I/O: native S3 for ``s3://``."""
        if self.is_local:
            return pafs.LocalFileSystem()
        if self.protocol in ("s3", "s3a"):
            return _native_s3(self.storage_options)
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def exists(self, path: str | None = None) -> bool:
        return with_retries(self.fs.exists, path or self.path, what=f"storage for {self.url!r}")

    def _real(self) -> str:
        return os.path.realpath(self.path) if self.is_local else self.path

    def overlaps(self, other: Location) -> str | None:
        """How this location and ``other`` nest: "is", "is inside", "contains", or None (apart).
        Local paths are compared after resolving symbolic links."""
        if self.protocol != other.protocol:
            return None
        a, b = self._real().rstrip("/"), other._real().rstrip("/")
        if a == b:
            return "is"
        if a.startswith(b + "/") or not b:
            return "is inside"
        if b.startswith(a + "/") or not a:
            return "contains"
        return None


def _native_s3(options: Mapping[str, Any]) -> pafs.S3FileSystem:
    endpoint = options.get("endpoint_url") or options.get("client_kwargs", {}).get("endpoint_url")
    kwargs: dict[str, Any] = {
        # Retries inside the client cover short blips; longer outages fail the task and Ray retries it.
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=10),
        "connect_timeout": 5,
        "request_timeout": 30,
    }
    if endpoint:
        parts = urlsplit(endpoint)
        kwargs["endpoint_override"] = parts.netloc or parts.path
        kwargs["scheme"] = parts.scheme or "https"
    key = options.get("key") or options.get("aws_access_key_id")
    secret = options.get("secret") or options.get("aws_secret_access_key")
    if key and secret:
        kwargs.update(access_key=key, secret_key=secret)
        if options.get("token"):
            kwargs["session_token"] = options["token"]
    if options.get("anon"):
        kwargs["anonymous"] = True
    kwargs["region"] = (options.get("region") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
                        or "us-east-1")
    return pafs.S3FileSystem(**kwargs)


def publish(loc: Location, path: str, data: bytes, what: str = "storage") -> None:
    """Write ``data`` at ``path`` whole or not at all: locally to a temporary name in the same
    folder, flushed, then renamed over it (readers see the old or the new file, never a torn one);
    an object store's PUT is atomic by itself."""
    if not loc.is_local:
        with_retries(loc.fs.pipe_file, path, data, what=what)
        return
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError(f"{what}: no space left on the device; free some space, then retry") from None
        raise


@contextlib.contextmanager
def locked(loc: Location, path: str) -> Iterator[None]:
    """An exclusive lock around a read-modify-write of ``path`` (locally ``flock`` on a lock file
    beside it; object storage has none: its writers are serialized by the caller's retry)."""
    if not loc.is_local:
        yield
        return
    import fcntl

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create_exclusive(loc: Location, path: str, data: bytes) -> bool:
    """Write ``data`` at ``path`` only if nothing is there yet: True if this call created it.
    Atomic locally (``O_CREAT | O_EXCL``) and on S3 (a conditional PUT, ``If-None-Match: *``)."""
    what = f"storage for {loc.url!r}"
    if loc.is_local:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    if loc.protocol in ("s3", "s3a"):
        try:
            with_retries(loc.fs.pipe_file, path, data, mode="create", what=what)
        except Exception as exc:  # noqa: BLE001 - a failed precondition means: someone else was first
            text = f"{type(exc).__name__} {exc} {exc.__cause__!r}"
            if isinstance(exc, FileExistsError) or "PreconditionFailed" in text or "412" in text:
                return False
            raise
        return True
    # No conditional write on this store: the best a client can do is check, then write.
    if with_retries(loc.fs.exists, path, what=what):
        return False
    with_retries(loc.fs.pipe_file, path, data, what=what)
    return True


@dataclass(frozen=True)
class InputFile:
    path: str
    size: int


def relative_key(path: str, root: str) -> str:
    """``path`` relative to ``root``: what ids and digests are made of, so the same collection
    copied elsewhere keeps them."""
    if path == root.rstrip("/"):  # a single-file input: restored by its own name
        return posixpath.basename(path)
    root = root.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def list_tree(loc: Location) -> list[InputFile]:
    """Every entry under ``loc`` as tar sees it: regular files and anything else that is not a
    folder or a link (read later, where a FIFO or device becomes an error row), symbolic links (as
    links, never followed) and folders (their modes and times are restored too). Object storage has
    only objects: its listing is :func:`list_collection`'s."""
    if not loc.is_local or os.path.isfile(loc.path):
        return list_collection(loc, None)
    if not os.path.isdir(loc.path):
        raise StorageError(f"input {loc.url!r} does not exist; check the path or URL (and credentials for object storage)")
    found: list[InputFile] = []
    for top, dirs, files in os.walk(loc.path, followlinks=False):
        for name in dirs:
            path = os.path.join(top, name)
            found.append(InputFile(path, 0))  # a folder, or a link to one (listed, not followed)
        for name in files:
            path = os.path.join(top, name)
            try:
                size = os.lstat(path).st_size
            except OSError:
                size = 0
            found.append(InputFile(path, size))
    if not found:
        raise StorageError(f"input {loc.url!r} holds no files; point input at a folder of such files")
    return sorted(found, key=lambda f: f.path)


def describe_tree(root: str | os.PathLike) -> dict[str, tuple]:
    """What an archive promises to give back of a local tree, entry by entry (as tar keeps it):
    ``relative path -> (is a link, is a folder, mode, mtime_ns, bytes or link target)``. Two trees
    restore alike when these are equal."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            link, folder = os.path.islink(path), os.path.isdir(path) and not os.path.islink(path)
            if link:
                body: bytes | str | None = os.readlink(path)
            elif folder:
                body = None
            else:
                with open(path, "rb") as f:
                    body = f.read()
            out[os.path.relpath(path, root)] = (link, folder, st.st_mode, st.st_mtime_ns, body)
    return out


def list_collection(loc: Location, extensions: Iterable[str] | None) -> list[InputFile]:
    """The files under ``loc`` whose suffix is one of ``extensions``, sorted by path; with
    ``extensions`` None, every file, dotfiles included (an archive takes them all)."""
    exts = tuple(e.lower() for e in extensions) if extensions is not None else None
    what = f"input {loc.url!r}"
    try:
        if not with_retries(loc.fs.exists, loc.path, what=what):
            raise StorageError(f"input {loc.url!r} does not exist; check the path or URL (and credentials for object storage)")
        if with_retries(loc.fs.isfile, loc.path, what=what):
            found = {loc.path: with_retries(loc.fs.info, loc.path, what=what)}
        else:
            found = with_retries(loc.fs.find, loc.path, detail=True, what=what)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - translated into one line without secrets
        raise storage_error(exc, loc.url, "input", loc) from None
    def wanted(p: str) -> bool:
        if exts is None:
            return True
        return p.lower().endswith(exts) and not posixpath.basename(p).startswith(".")

    files = sorted((InputFile(p, int(info.get("size") or 0)) for p, info in found.items()
                    if info.get("type", "file") != "directory" and wanted(p)), key=lambda f: f.path)
    if not files:
        which = "files" if exts is None else f"files ending in {', '.join(exts)}"
        raise StorageError(f"input {loc.url!r} holds no {which}; point input at a folder of such files")
    return files


def check_writable(output: Location, folder: str) -> None:
    """Fail before any work if ``output`` cannot be written (one line, no secrets): a probe file
    is written into ``output/folder`` and removed."""
    probe = posixpath.join(output.path, folder, f".probe-{uuid.uuid4().hex[:8]}")
    try:
        with_retries(output.fs.makedirs, posixpath.dirname(probe), exist_ok=True, what=f"output {output.url!r}")
        with_retries(output.fs.pipe_file, probe, b"", what=f"output {output.url!r}")
        with_retries(output.fs.rm, probe, what=f"output {output.url!r}")
    except StorageError:
        raise
    except (PermissionError, NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else "a parent of it is a file"
        raise StorageError(f"output {output.url!r} is not writable: {why}; "
                           "choose a writable output or fix its permissions") from None
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, output.url, "output", output) from None
