"""Loopback S3 for tests: a real ``moto_server`` process (as s3fs's own suite starts it),
and a TCP proxy in front of it that can make the endpoint vanish and come back."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from cluster.head import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    # Distinctive, so tests can prove it never lands in logs, metadata or errors.
    "AWS_SECRET_ACCESS_KEY": "sEcReT-never-print-me-0042",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        moto = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)],
                                     env={**os.environ, **(env or {})},
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(self.endpoint, timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class VanishingProxy:
    """Forwards 127.0.0.1:port to a target from a process of its own; ``down()`` kills it
    (connections are refused, open ones cut) until ``up()`` starts another.

    A process, not a thread of the test's: delta-rs holds the GIL through some of its blocking
    calls (``DeltaTable.history``), which would stop a proxy thread from forwarding them."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None
        self.up()

    def up(self) -> None:
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tcp_proxy.py")), str(self.port),
                                       str(self.target_port)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the S3 proxy did not start")

    def down(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
