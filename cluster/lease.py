"""One writer per output: the lease a compress job holds on its output while it writes.

Two jobs committing into one output at once lose data with this commit protocol (the manifest
is rewritten whole, so the last writer's view wins; one job's clean-up removes the other's
staging). Until outputs are tables with conflict-checked commits, a job takes a lease first:

    OUTPUT/_aec/writer.json   {run_id, host, pid, started, heartbeat}

created only if absent (``O_EXCL`` locally, ``If-None-Match: *`` on S3), renewed by a background
thread every ``RENEW_SECONDS``, removed when the job ends. A second job finds it and stops before
touching anything, in one line. A lease is stale — taken over — when its heartbeat is older than
``STALE_SECONDS`` (a driver killed without clean-up) or its process, on this host, is gone. A job
that finds its lease taken over stops (its committed rows are kept).
"""

from __future__ import annotations

import json
import os
import posixpath
import socket
import threading
import time
from typing import Any

from cluster.clock import utc_now
from cluster.storage import Location, StorageError, create_exclusive, with_retries

__all__ = ["LEASE_FILE", "RENEW_SECONDS", "STALE_SECONDS", "LeaseLost", "WriterLease"]

#: the lease's file name under the output's metadata folder
LEASE_FILE = "writer.json"

RENEW_SECONDS = 30.0
STALE_SECONDS = 300.0
#: run ids whose lease this process holds now (a lease of this process not among them is left over)
_HELD: set[str] = set()


class LeaseLost(StorageError):
    """Another job took this job's output over (this one's lease had gone stale)."""


class WriterLease:
    def __init__(self, output: Location, run_id: str, folder: str, stale_seconds: float = STALE_SECONDS) -> None:
        self.output, self.run_id, self.stale_seconds = output, run_id, stale_seconds
        self.path = posixpath.join(output.path, folder, LEASE_FILE)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def _record(self) -> bytes:
        return json.dumps({"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "started": utc_now(), "heartbeat": time.time()}).encode()

    def _io(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retries(fn, *args, what=f"output {self.output.url!r}", **kwargs)

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._io(self.output.fs.cat_file, self.path))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def stale(self, other: dict[str, Any]) -> bool:
        if time.time() - float(other.get("heartbeat", 0)) > self.stale_seconds:
            return True
        if other.get("host") == socket.gethostname() and other.get("pid") == os.getpid():
            return other.get("run_id") not in _HELD  # this process's, from a job that has ended
        if other.get("host") == socket.gethostname() and other.get("pid"):
            try:
                os.kill(int(other["pid"]), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def acquire(self) -> None:
        """Take the lease, or raise a one-line :class:`StorageError` naming the job that holds it."""
        self._io(self.output.fs.makedirs, posixpath.dirname(self.path), exist_ok=True)
        for _ in range(3):
            if create_exclusive(self.output, self.path, self._record()):
                _HELD.add(self.run_id)
                self._start()
                return
            other = self.holder()
            if other is None:  # released meanwhile
                continue
            if not self.stale(other):
                age = time.time() - float(other.get("heartbeat", 0))
                raise StorageError(
                    f"output {self.output.url!r} is being written by another compress job (run {other.get('run_id')} "
                    f"on {other.get('host')}, alive {age:.0f} s ago); wait for it to finish or choose another output")
            self._io(self.output.fs.rm, self.path)  # a dead job's lease
        raise StorageError(f"output {self.output.url!r}: could not take the writer lease; another job keeps taking it")

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._renew_loop, name="aec-writer-lease", daemon=True)
        self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self.renew()
            except LeaseLost as exc:
                self.lost = str(exc)
                return
            except StorageError:
                continue  # storage briefly unreachable: try again at the next beat

    def renew(self) -> None:
        """Refresh the heartbeat; :class:`LeaseLost` if another job holds the lease now."""
        other = self.holder()
        if other is not None and other.get("run_id") != self.run_id:
            raise LeaseLost(f"output {self.output.url!r} was taken over by run {other.get('run_id')} "
                            "(this job's lease went stale); this job stops, its committed rows are kept")
        self._io(self.output.fs.pipe_file, self.path, self._record())

    def check(self) -> None:
        """Raise :class:`LeaseLost` if the renewal thread found the lease taken (before a commit)."""
        if self.lost:
            raise LeaseLost(self.lost)

    def release(self) -> None:
        _HELD.discard(self.run_id)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        other = self.holder()
        if other is not None and other.get("run_id") == self.run_id:
            try:
                self._io(self.output.fs.rm, self.path)
            except (FileNotFoundError, StorageError):
                pass
