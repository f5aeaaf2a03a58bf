"""On a cluster: `aec cluster up`, submit / status / logs / cancel through the Ray Jobs API,
the catalog, the scheduler on a seconds-level cron, and a real Prometheus scraping a job.

Everything runs against a real Ray head started by `aec cluster up` on loopback (token
authentication on), on ports of its own beside the session's embedded Ray instance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cluster.head import free_port
from jobs.catalog import JobCatalog
from jobs.submit import JobsClient
from tests import tables
from tests.conftest import run_cli
from tests.prometheus import Prometheus

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture(scope="module")
def head(tmp_path_factory, ray_local):
    root = tmp_path_factory.mktemp("cluster")
    ports = {name: free_port() for name in ("port", "dashboard", "metrics", "driver", "scheduler")}
    ports["port"] = _free_port_in(10002, 19999)  # inside Ray's default worker-port range: must still start
    mp = pytest.MonkeyPatch()
    mp.setenv("AEC_HOME", str(root / "home"))
    mp.setenv("RAY_metrics_report_interval_ms", "1000")  # actor metrics reach the export port within a second
    mp.setenv("AEC_METRICS_LINGER_SECONDS", "3")  # drivers serve their final values for 3 scrapes
    out = run_cli("cluster", "up", "--num-cpus", "2", "--port", str(ports["port"]), "--dashboard-port",
                  str(ports["dashboard"]), "--metrics-port", str(ports["metrics"]), "--driver-metrics-port",
                  str(ports["driver"]))
    address = f"http://127.0.0.1:{ports['dashboard']}"
    assert address in out
    state = json.loads((root / "home" / "cluster.json").read_text())
    prometheus = Prometheus(root / "prometheus", {
        "ray": f"127.0.0.1:{ports['metrics']}", "aec-driver": f"127.0.0.1:{ports['driver']}",
        "aec-scheduler": f"127.0.0.1:{ports['scheduler']}"})
    yield {"root": root, "address": address, "ports": ports, "pid": state["pid"], "prometheus": prometheus,
           "temp_dir": state["temp_dir"]}
    prometheus.stop()
    from cluster.head import session_processes

    assert session_processes(state["temp_dir"])  # the head's gcs_server, raylet, dashboard, ...
    stopping = time.monotonic()
    out = run_cli("cluster", "down")
    print(f"cluster down: {time.monotonic() - stopping:.1f} s")  # 30.4 s while Ray drained its node on SIGTERM
    assert "stopped the Ray head" in out
    assert session_processes(state["temp_dir"]) == []  # all gone, and nothing else was touched
    assert ray_local.is_initialized() and ray_local.cluster_resources()["CPU"] == 2
    mp.undo()


def _free_port_in(low: int, high: int) -> int:
    import random
    import socket

    for port in random.sample(range(low, high), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def test_the_head_and_the_embedded_instance_listen_on_loopback_only(head, ray_local):
    from cluster.head import session_processes
    from tests.sockets import is_loopback, listening_addresses

    pids = session_processes(head["temp_dir"])
    addresses = listening_addresses(pids)
    assert addresses and all(is_loopback(a) for a, _ in addresses), addresses
    assert {port for _, port in addresses} & {head["ports"]["port"]}, (head["ports"], addresses)  # the GCS
    session = ray_local._private.worker._global_node.get_session_dir_path()
    local = listening_addresses(session_processes(session))
    assert local and all(is_loopback(a) for a, _ in local), local


def test_a_client_joins_the_token_protected_cluster_through_ray_address(head, trained, photos, tmp_path):
    """RAY_ADDRESS=host:port aec compress: the auth mode is set before Ray is imported."""
    spec = _compress_spec(head, trained, photos, "joined", tmp_path / "joined")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    env["RAY_ADDRESS"] = f"127.0.0.1:{head['ports']['port']}"
    result = subprocess.run([sys.executable, "-m", "jobs.cli", "compress", str(spec)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "compress job 'joined' completed" in result.stdout


def _spec(root: Path, name: str, text: str) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def _compress_spec(head, trained, photos, name: str, output: Path) -> Path:
    return _spec(head["root"], name, f"kind: compress\nname: {name}\nmodality: image\ninput: {photos}\n"
                 f"output: {output}\nregistry: {trained['registry']}\nmodel: photos@1\nworkers: 1\n"
                 "batch_size: 4\ncommit_every: 1\n")


def _wait(client: JobsClient, job_id: str, states: set[str], timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while (status := client.status(job_id)) not in states:
        assert time.monotonic() < deadline, f"{job_id} still {status}"
        time.sleep(0.5)
    return status


@pytest.fixture(scope="module")
def compress_job(head, trained, photos):
    out = head["root"] / "latents"
    spec = _compress_spec(head, trained, photos, "cluster-compress", out)
    job_id = run_cli("submit", str(spec)).strip().splitlines()[0]
    client = JobsClient(head["address"])
    first_status = client.status(job_id)  # submit returned at once: the job has not finished
    logs = run_cli("jobs", "logs", job_id, "--follow", "--registry", str(trained["registry"]))
    return {"id": job_id, "first_status": first_status, "logs": logs, "output": out, "client": client,
            "registry": str(trained["registry"])}


def test_submit_returns_at_once_and_the_job_runs_on_the_cluster(compress_job):
    assert compress_job["first_status"] in {"PENDING", "RUNNING"}
    assert "compress job 'cluster-compress' completed" in compress_job["logs"]
    assert compress_job["client"].status(compress_job["id"]) == "SUCCEEDED"
    # the job runs the job module, not the CLI
    assert compress_job["client"].info(compress_job["id"])["entrypoint"] == "python -m jobs.run compress spec.yaml"
    assert tables.dataset(compress_job["output"]).count_rows() == 36


def test_no_credential_reaches_rays_files(head, compress_job):
    """Ray writes a job's runtime_env env_vars in plain text (runtime_env_agent.log): aec hands it
    where storage is, never the credentials (the session's secret is distinctive)."""
    from tests.s3 import CREDENTIALS

    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode()
    leaked = [str(p) for p in Path(head["temp_dir"]).rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert leaked == []
    assert any(Path(head["temp_dir"]).rglob("runtime_env_agent*.log"))  # the file that used to hold it exists


def head_address(job: dict) -> str:
    return job["client"].address


def test_catalog_records_the_job(compress_job, trained):
    record = JobCatalog(compress_job["registry"]).job(compress_job["id"])
    assert record["status"] == "SUCCEEDED" and record["kind"] == "compress"
    assert record["rows"] == 36 and record["errors"] == 0 and record["model_version"] == "photos@1"
    assert len(record["spec_sha256"]) == 16 and record["output"] == str(compress_job["output"])
    assert record["seconds"] > 0 and record["submitted_at"] <= record["started_at"] <= record["finished_at"]
    listing = run_cli("jobs", "list", "--registry", compress_job["registry"])
    assert compress_job["id"] in listing and "SUCCEEDED" in listing
    # Without --registry (the default registry holds no record of it): found on the cluster in use.
    assert compress_job["id"] in run_cli("jobs", "list", "--address", head_address(compress_job))
    found = run_cli("jobs", "status", compress_job["id"])
    assert "SUCCEEDED" in found and "photos@1" in found
    status = run_cli("jobs", "status", compress_job["id"], "--registry", compress_job["registry"])
    assert "SUCCEEDED" in status and "photos@1" in status
    assert [d["rows"] for d in JobCatalog(compress_job["registry"]).datasets()
            if d["output"] == str(compress_job["output"])] == [36]
    assert "photos@1" in run_cli("datasets", "list", "--registry", compress_job["registry"])


def test_prometheus_scrapes_the_job_metrics(head, compress_job):
    prom = head["prometheus"]
    # encoder actors, through ray.util.metrics and Ray's export port
    items = prom.wait_for('max_over_time(ray_aec_encoder_items_total{job_name="cluster-compress"}[10m])')
    assert items and sum(float(r["value"][1]) for r in items) == 36
    assert prom.wait_for('ray_aec_encoder_batch_seconds_bucket{job_name="cluster-compress"}')
    bytes_in = prom.wait_for('max_over_time(ray_aec_encoder_bytes_in_total{job_name="cluster-compress"}[10m])')
    assert sum(float(r["value"][1]) for r in bytes_in) > 0
    # the driver, through prometheus_client on the head's driver port
    rows = prom.wait_for('max_over_time(aec_job_rows_committed{job_name="cluster-compress"}[10m])')
    assert rows and float(rows[0]["value"][1]) == 36
    ratio = prom.wait_for('max_over_time(aec_job_compression_ratio{job_name="cluster-compress"}[10m])')
    # input over bytes on storage (parts, log), never over the payloads alone: below input/payload
    assert 0 < float(ratio[0]["value"][1]) < tables.totals(compress_job["output"])["payload_ratio"]


def test_cancel_stops_a_running_job(head, photos, tmp_path):
    spec = _spec(tmp_path, "long-train", f"kind: train\nname: long-train\nmodality: image\ninput: {photos}\n"
                 f"registry: {tmp_path}/registry\nmodel: long\narchitecture: image-conv\nepochs: 500\nworkers: 1\n")
    job_id = run_cli("submit", str(spec)).strip().splitlines()[0]
    client = JobsClient(head["address"])
    _wait(client, job_id, {"RUNNING"})
    time.sleep(3)  # inside the job, past start-up
    out = run_cli("jobs", "cancel", job_id, "--registry", f"{tmp_path}/registry")
    assert f"stopping {job_id}" in out
    assert _wait(client, job_id, TERMINAL, timeout=60) == "STOPPED"
    record = JobCatalog(f"{tmp_path}/registry").job(job_id)
    assert record["status"] == "STOPPED"
    assert not (tmp_path / "registry" / "long").exists()  # nothing registered


def _scheduler(head, seconds: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs.cli", "scheduler", "run", "--address", head["address"],
                           "--poll", "0.5", "--duration", str(seconds), "--metrics-port", str(head["ports"]["scheduler"])],
                          capture_output=True, text=True, timeout=seconds + 120, env=os.environ.copy())


def test_schedule_fires_without_overlap_and_keeps_history(head, trained, photos, tmp_path):
    spec = _compress_spec(head, trained, photos, "sched-compress", tmp_path / "latents")
    run_cli("schedule", "add", "every-2s", "--cron", "* * * * * */2", str(spec), "--set", "commit_every=2")
    client = JobsClient(head["address"])
    first = _scheduler(head, 10)
    assert first.returncode == 0, first.stdout + first.stderr
    from jobs.schedule import ScheduleStore

    store = ScheduleStore(Path(os.environ["AEC_HOME"]) / "schedules.db")
    runs = list(reversed(store.runs("every-2s", limit=100)))
    submitted = [r for r in runs if r["job_id"]]
    assert len(submitted) >= 1 and any(r["status"] == "SKIPPED_OVERLAP" for r in runs), [dict(r) for r in runs]
    # never two at once: each run started after the previous one ended (Ray's own clock)
    for job in submitted:
        _wait(client, job["job_id"], TERMINAL)
    infos = [client.info(r["job_id"]) for r in submitted]
    for before, after in zip(infos, infos[1:]):
        assert after["start_time"] >= before["end_time"], (before, after)
    assert infos[0]["status"] == "SUCCEEDED"

    # down for a while: the due times it missed are coalesced into one run at restart
    time.sleep(6)
    second = _scheduler(head, 4)
    assert second.returncode == 0, second.stdout + second.stderr
    after = list(reversed(store.runs("every-2s", limit=200)))
    new = after[len(runs):]
    missed = [r for r in new if r["status"] == "MISSED"]
    assert len(missed) >= 2, [dict(r) for r in new]
    fired = [r for r in new if r["job_id"]]
    assert len(fired) == 1  # one catch-up run, not one per missed time
    _wait(client, fired[0]["job_id"], TERMINAL)

    assert (Path(os.environ["AEC_HOME"]) / "schedules.db").stat().st_mode & 0o777 == 0o600
    listing = run_cli("schedule", "list", "--history", "50")
    assert "every-2s" in listing and "MISSED" in listing and "SKIPPED_OVERLAP" in listing
    prom = head["prometheus"]
    assert prom.wait_for('aec_schedule_runs_total{schedule="every-2s",outcome="submitted"}', timeout=30) or \
        prom.wait_for('max_over_time(aec_schedule_runs_total{schedule="every-2s",outcome="submitted"}[10m])')
    run_cli("schedule", "remove", "every-2s")
    assert "every-2s" not in run_cli("schedule", "list")
