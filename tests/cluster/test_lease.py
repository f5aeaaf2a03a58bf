"""One writer per output, with no Ray: a second job stops in one line before touching anything; a
dead job's lease is taken over; a job whose lease was taken stops."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from cluster.lease import LeaseLost, WriterLease
from cluster.storage import Location, StorageError


def _lease(out, run_id: str, **kw) -> WriterLease:
    return WriterLease(Location.of(str(out)), run_id, "_aec", **kw)


def test_a_second_writer_is_refused_until_the_first_releases(tmp_path):
    first = _lease(tmp_path, "run-a")
    first.acquire()
    with pytest.raises(StorageError, match="being written by another compress job \\(run run-a"):
        _lease(tmp_path, "run-b").acquire()
    first.release()
    second = _lease(tmp_path, "run-b")
    second.acquire()
    assert json.loads((tmp_path / "_aec/writer.json").read_text())["run_id"] == "run-b"
    second.release()
    assert not (tmp_path / "_aec/writer.json").exists()


def test_the_lease_of_a_dead_process_or_a_silent_one_is_taken_over(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / "_aec").mkdir()
    (tmp_path / "_aec/writer.json").write_text(json.dumps(
        {"run_id": "killed", "host": __import__("socket").gethostname(), "pid": int(dead.stdout), "heartbeat": time.time()}))
    taker = _lease(tmp_path, "run-b")
    taker.acquire()
    taker.release()
    (tmp_path / "_aec/writer.json").write_text(json.dumps(
        {"run_id": "silent", "host": "elsewhere", "pid": 1, "heartbeat": time.time() - 3600}))
    taker = _lease(tmp_path, "run-c")
    taker.acquire()
    assert json.loads((tmp_path / "_aec/writer.json").read_text())["run_id"] == "run-c"
    taker.release()


def test_a_job_whose_lease_was_taken_over_stops(tmp_path):
    slow = _lease(tmp_path, "run-a", stale_seconds=0.0)
    slow.acquire()
    _lease(tmp_path, "run-b", stale_seconds=0.0).acquire()  # run-a looks stale to run-b
    with pytest.raises(LeaseLost, match="taken over by run run-b"):
        slow.renew()
    slow.release()  # leaves run-b's lease alone
    assert json.loads((tmp_path / "_aec/writer.json").read_text())["run_id"] == "run-b"


def test_a_lease_this_process_left_behind_does_not_block_its_next_job(tmp_path):
    first = _lease(tmp_path, "run-a")
    first.acquire()
    first._stop.set()  # as if its renewal wrote the lease back after the release removed it
    first.release()
    (tmp_path / "_aec/writer.json").write_bytes(first._record())
    nxt = _lease(tmp_path, "run-b")
    nxt.acquire()
    nxt.release()
