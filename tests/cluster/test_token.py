"""The embedded default's cluster token is owner-only (issue 27, item 9): aec makes it, 0600,
before Ray starts (Ray's own generator writes it 0644, and `aec cluster up` reuses it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.servers
def test_a_plain_local_ray_start_leaves_the_token_owner_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(Path(__file__).parents[2]))
    code = "import ray\nfrom cluster.runtime import ensure_ray\nensure_ray(num_cpus=1)\nray.shutdown()\n"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, capture_output=True)
    token = tmp_path / ".ray" / "auth_token"
    assert token.read_text().strip()
    assert token.stat().st_mode & 0o777 == 0o600


def test_a_stale_state_file_never_stops_another_process(tmp_path):
    """Issue 27, item 11: `aec cluster down` with a recorded pid that is now someone else's leaves it alone."""
    import json
    import subprocess
    import time

    from cluster.head import _state_file, head_status, stop_head

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _state_file(tmp_path).write_text(json.dumps({
            "pid": other.pid, "address": "http://127.0.0.1:1", "gcs_address": "127.0.0.1:2",
            "metrics_url": "http://127.0.0.1:3/metrics", "driver_metrics_port": 4, "temp_dir": "/tmp/aec-ray-0-1",
            "log": str(tmp_path / "cluster.log"), "started_at": time.time()}))
        assert head_status(tmp_path) is None
        assert stop_head(tmp_path) is None
        assert other.poll() is None  # still running
    finally:
        other.kill()


def test_two_commands_making_the_token_at_once_share_one_whole_token(tmp_path, monkeypatch):
    """Another `aec` command creates the token between this one's existence check and its own
    write (two jobs started at once on a fresh machine): this one uses theirs, fails nothing and
    leaves no temporary file."""
    from cluster.runtime import ensure_auth_token

    path = tmp_path / "ray" / "auth_token"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    path.parent.mkdir()
    exists = Path.exists

    def racing(self: Path) -> bool:
        if self == path and not exists(self):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # the other command wins
            os.write(fd, b"theirs")
            os.close(fd)
            return False  # ... after this one looked
        return exists(self)

    monkeypatch.setattr(Path, "exists", racing)
    assert ensure_auth_token() == path
    assert path.read_text() == "theirs" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["auth_token"]


@pytest.mark.servers
def test_a_local_job_starts_its_own_instance_while_ray_start_runs_on_the_machine():
    """`ray start --head` on this machine leaves its address in TMP/ray/ray_current_cluster, and
    Ray's default `ray.init()` joins it — then refuses the embedded default's num_cpus, failing
    every local job. The embedded default starts an instance of its own (here the file names a
    port nothing listens on: joining it could only fail)."""
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="aec-t", dir="/tmp"))  # short: Ray's unix sockets live under it
    (tmp / "ray").mkdir()
    (tmp / "ray" / "ray_current_cluster").write_text("127.0.0.1:9")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "AEC_ADDRESS")}
    env["RAY_TMPDIR"] = str(tmp)
    code = ("import ray; from cluster.runtime import ensure_ray; ensure_ray(num_cpus=1, log_to_driver=False); "
            "print('cpus', ray.cluster_resources()['CPU'])")
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.split()[-2:] == ["cpus", "1.0"], result.stdout
