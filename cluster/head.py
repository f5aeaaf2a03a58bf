"""A local Ray head on loopback for the embedded default: dashboard + Jobs API, metrics export.

``ray start --head --block`` runs as a child in a session of its own; stopping sends it
SIGTERM, on which it stops exactly the Ray processes it started (``ray stop`` would stop
every Ray process on the machine, other users' included). The state file says what was
started, so ``down`` never touches a head it did not start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from aecore.errors import UserError
from cluster.runtime import ensure_auth_token

__all__ = ["HeadError", "LocalHead", "free_port", "head_status", "session_processes", "start_head", "stop_head"]


class HeadError(UserError, RuntimeError):
    """The local head could not be started or stopped; the message says why and what to do."""


@dataclass(frozen=True)
class LocalHead:
    pid: int
    address: str  # Jobs API / dashboard URL
    gcs_address: str
    metrics_url: str
    driver_metrics_port: int
    temp_dir: str
    log: str
    started_at: float

    def alive(self) -> bool:
        """Running, and the very `ray start` aec launched: a pid from a stale state file (after a
        crash or a reboot) may belong to any other process now, which is never ours to stop."""
        return _alive(self.pid) and _is_head(self.pid, self.temp_dir)


def _is_head(pid: int, temp_dir: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return False
    return b"start" in args and b"--head" in args and f"--temp-dir={temp_dir}".encode() in args


def _alive(pid: int) -> bool:
    """Running (a zombie is not: in a container whose init does not reap, dead children linger)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def session_processes(temp_dir: str) -> list[int]:
    """Live processes of the Ray session under ``temp_dir`` (gcs_server, raylet, dashboard, workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            mine = (temp_dir + "/").encode() in cmdline or (temp_dir + "\0").encode() in cmdline
            if mine and _alive(int(entry)):
                pids.append(int(entry))
    return pids


_WORKER_RANGES = ((10002, 19999), (20000, 29999), (30000, 32767), (61000, 65535))


def worker_port_range(taken: tuple[int, ...]) -> tuple[int, int]:
    """A range of ports for Ray's workers that holds none of ``taken`` (Ray's default first)."""
    for low, high in _WORKER_RANGES:
        if not any(low <= p <= high for p in taken):
            return low, high
    raise HeadError(f"no range of worker ports avoids the head's ports {sorted(taken)}; pick ports above 32767")


def _state_file(home: Path) -> Path:
    return home / "cluster.json"


def head_status(home: Path) -> LocalHead | None:
    """The head this ``home`` started, if it is still running."""
    path = _state_file(home)
    if not path.exists():
        return None
    head = LocalHead(**json.loads(path.read_text()))
    return head if head.alive() else None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(low: int = 30000, high: int = 32767) -> int:
    """A port nothing listens on at the moment, on 127.0.0.1, between ``low`` and ``high``: below
    the kernel's ephemeral range (32768-60999), so no outgoing connection is handed it between
    now and the moment Ray binds it (an ephemeral pick was, and the head's client server died)."""
    import random

    for port in random.sample(range(low, high + 1), min(200, high - low + 1)):
        if _port_free(port):
            return port
    raise HeadError(f"no free port on 127.0.0.1 between {low} and {high}")


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True  # 401 without a token: it is up
    except OSError:
        return False
    return True


def start_head(home: Path, *, num_cpus: int | None = None, port: int = 6379, dashboard_port: int = 8265,
               metrics_port: int = 8080, driver_metrics_port: int = 8081, timeout: float = 120.0,
               env: dict[str, str] | None = None) -> LocalHead:
    """Start a head on 127.0.0.1 with token authentication on; return once the Jobs API answers."""
    running = head_status(home)
    if running:
        return running
    for what, p in (("GCS", port), ("dashboard", dashboard_port), ("metrics", metrics_port)):
        if not _port_free(p):
            raise HeadError(f"port {p} ({what}) is in use on 127.0.0.1; stop what holds it or pick another "
                            f"with --{'port' if what == 'GCS' else what + '-port'}")
    home.mkdir(parents=True, exist_ok=True)
    ensure_auth_token()
    agent_port, client_port = free_port(), free_port()
    workers = worker_port_range((port, dashboard_port, metrics_port, driver_metrics_port, agent_port, client_port))
    temp_dir = Path("/tmp") / f"aec-ray-{os.getuid()}-{port}"
    log = home / "cluster.log"
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [str(ray_bin) if ray_bin.exists() else "ray", "start", "--head", "--block",
           f"--num-cpus={num_cpus or os.cpu_count()}", "--node-ip-address=127.0.0.1",
           f"--port={port}", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
           f"--metrics-export-port={metrics_port}", f"--temp-dir={temp_dir}", "--include-dashboard=true",
           # fixed defaults (52365, 10001) collide with any other Ray on the machine: take free ones
           f"--dashboard-agent-listen-port={agent_port}", f"--ray-client-server-port={client_port}",
           # Ray's workers take ports 10002-19999 by default; a head port in that range is refused
           # by `ray start`, so the workers get a range that holds none of the head's ports
           f"--min-worker-port={workers[0]}", f"--max-worker-port={workers[1]}"]
    child_env = {**os.environ, **(env or {})}
    child_env["RAY_AUTH_MODE"] = "token"  # keep authentication on: it stops strangers running code here
    # `ray start` replaces --node-ip-address=127.0.0.1 by the machine's address, and its agents and
    # metrics endpoint then listen there; Ray's single-machine mode keeps the node on loopback.
    child_env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    # Job entrypoints run `python -m jobs.run`: this interpreter, first on PATH.
    child_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{child_env.get('PATH', '')}"
    child_env["AEC_METRICS_PORT"] = str(driver_metrics_port)  # drivers of jobs on this head export here
    # Ray 2.60's head, on SIGTERM, first drains its node for up to 30 s (for Serve proxies): once
    # jobs had run here, `aec cluster down` took 30.4 s, against 4.5 s for a fresh head. This head
    # serves batch jobs, which `cluster down` stops either way: tear down at once.
    child_env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env, start_new_session=True)
    head = LocalHead(pid=proc.pid, address=f"http://127.0.0.1:{dashboard_port}", gcs_address=f"127.0.0.1:{port}",
                     metrics_url=f"http://127.0.0.1:{metrics_port}/metrics", driver_metrics_port=driver_metrics_port,
                     temp_dir=str(temp_dir), log=str(log), started_at=time.time())
    deadline = time.monotonic() + timeout
    while not _answers(f"{head.address}/api/version"):
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise HeadError(f"ray start exited with {proc.returncode}: {tail[0][:200]} (full log: {log})")
        if time.monotonic() > deadline:
            _terminate(proc.pid)
            raise HeadError(f"the Ray head did not answer on {head.address} within {timeout:.0f} s; see {log}")
        time.sleep(0.5)
    _state_file(home).write_text(json.dumps(asdict(head), indent=2))
    return head


def _terminate(pid: int, timeout: float = 30.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.2)
    else:
        try:  # the whole session it led, nothing else
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_head(home: Path) -> LocalHead | None:
    """Stop the head this ``home`` started; ``None`` if none is running. Other Ray processes are left alone."""
    head = head_status(home)
    if head is not None:
        _terminate(head.pid)
        # its children (raylet, agents, job drivers) exit on their own a moment later; wait, then
        # end stragglers of this session only (they are recognised by the session's temp dir)
        deadline = time.monotonic() + 20
        while (left := session_processes(head.temp_dir)) and time.monotonic() < deadline:
            time.sleep(0.3)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _state_file(home).unlink(missing_ok=True)
    return head
