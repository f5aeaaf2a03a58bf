"""The embedded default's cluster token is owner-only (issue 27, item 9): aec makes it, 0600,
before Ray starts (Ray's own generator writes it 0644, and `aec cluster up` reuses it)."""

from __future__ import annotations

import os
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
