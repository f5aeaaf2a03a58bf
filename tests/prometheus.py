"""A real Prometheus server (Debian's package) on loopback for tests, queried over its HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from cluster.head import free_port


class Prometheus:
    def __init__(self, root: Path, targets: dict[str, str | Path], interval: str = "1s") -> None:
        """``targets``: scrape job -> ``host:port``, or a file Prometheus watches for its targets
        (file-based service discovery, the format Ray's own discovery writer produces)."""
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: the test set-up installs Debian's prometheus package (make setup)"
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {"global": {"scrape_interval": interval, "evaluation_interval": interval},
                  "scrape_configs": [{"job_name": name, **({"file_sd_configs": [{"files": [str(target)]}]}
                                                             if isinstance(target, Path) else
                                                             {"static_configs": [{"targets": [target]}]})}
                                     for name, target in targets.items()]}
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(root / "prometheus.log", "wb")
        self.proc = subprocess.Popen([binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).close()
                break
            except OSError:
                assert self.proc.poll() is None, (root / "prometheus.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "prometheus did not become ready"
                time.sleep(0.5)

    def query(self, expr: str) -> list[dict]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 90.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(1.0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()
