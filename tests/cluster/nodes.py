"""Jobs on a real multi-node Ray cluster on one machine, a node lost (or added) mid-job.

``ray.cluster_utils.Cluster`` starts a head (no CPUs: only the driver and Ray's services) and
worker nodes of one CPU each, every one its own raylet, object store and metrics agent on
loopback — what Ray's own tests use for node failures. ``remove_node(allow_graceful=False)``
kills a node's processes as a reclaimed spot machine loses them. Run as

    python -m tests.cluster.nodes OUT SCENARIO [SCENARIO ...]

each scenario writes ``OUT/<scenario>.json`` (what happened, or the error); tests/cluster/
test_nodes.py asserts it. A subprocess: the test session's own Ray is a one-node instance.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Ray's single-machine mode: every node stays on 127.0.0.1 (without it, Ray replaces a node's
# 127.0.0.1 by the machine's address, where nothing here can reach the head's GCS)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.pop("RAY_ADDRESS", None)
# actor metrics reach their node's export port within a second (Ray's default: 10 s)
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "object_store_memory": 80 * 2**20}
# a killed node is noticed in ~1.5 s, not Ray's production 15 s (5 missed checks, 3 s apart)
HEALTH = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 500, "health_check_failure_threshold": 3}


class Nodes:
    """A head without CPUs and worker nodes of one CPU."""

    def __init__(self) -> None:
        self.cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False,
            "object_store_memory": 80 * 2**20, "_system_config": HEALTH})
        ray.init(address=self.cluster.address, log_to_driver=False, logging_level="WARNING")

    def add(self) -> Any:
        return self.cluster.add_node(**NODE)

    def workers(self, count: int) -> list[Any]:
        """Exactly ``count`` worker nodes, adding or removing some."""
        while len(self.cluster.worker_nodes) < count:
            self.add()
        while len(self.cluster.worker_nodes) > count:
            self.cluster.remove_node(next(iter(self.cluster.worker_nodes)))
        self.cluster.wait_for_nodes()
        return list(self.cluster.worker_nodes)

    def lose(self, node_id: str) -> None:
        """Kill one worker node outright (no graceful shutdown): its actors, tasks and objects go."""
        node = next(n for n in self.cluster.worker_nodes if n.node_id == node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def write_metrics_targets(self, path: Path) -> list[str]:
        """Every live node's metrics export address, as a Prometheus file-discovery file (what
        Ray's dashboard writes to ``prom_metrics_service_discovery.json``; on Kubernetes the
        metrics service's DNS plays this part). Written whole, then renamed into place."""
        from cluster.runtime import live_nodes

        targets = sorted(f"{n['NodeManagerAddress']}:{n['MetricsExportPort']}" for n in live_nodes())
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"labels": {"cluster": "nodes"}, "targets": targets}]))
        tmp.replace(path)
        return targets

    def shutdown(self) -> None:
        ray.shutdown()
        self.cluster.shutdown()


def actor_nodes(class_part: str) -> list[str]:
    """Node ids of the live actors whose class name contains ``class_part`` (from the GCS's actor
    table: the state API would need a dashboard)."""
    from ray._private import state

    return [a["Address"]["NodeID"] for a in state.actors().values()
            if a.get("State") == "ALIVE" and class_part in (a.get("ActorClassName") or "")]


def wait_until(what: Callable[[], Any], timeout: float, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(step)
    return None


class Background(threading.Thread):
    """A job run in a thread of the driver, its result or exception kept."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.finished_first = False  # set by lose_a_node_during: the job ended before a node could go

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # noqa: BLE001 - reported, a re-run decides
            self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def lose_a_node_during(nodes: Nodes, job: Callable[[], Any], ready: Callable[[], Any], actor_class: str,
                       timeout: float = 240) -> tuple[Background, bool]:
    """Run ``job`` in the background; once ``ready()`` holds, kill a node that runs an actor of
    ``actor_class`` (if the job is still going); wait for the job. ``(the job, whether a node was lost)``."""
    run = Background(job)
    run.start()
    wait_until(ready, timeout=timeout)
    victims = wait_until(lambda: actor_nodes(actor_class), timeout=30)
    running = run.is_alive()  # one observation decides both: a False ``lost`` says why
    lost = bool(victims) and running
    run.finished_first = not running
    if lost:
        nodes.lose(victims[0])
    run.join(600)
    return run, lost


def compress_spec(root: Path, name: str, photos: Path, output: Path, **extra: Any) -> Any:
    from jobs.spec import parse_spec

    return parse_spec({"kind": "compress", "name": name, "modality": "image", "input": str(photos),
                       "output": str(output), "registry": str(root / "registry"), "model": "zoo:image-small",
                       "lossless": False, "batch_size": 2, "workers": 2, "cpus_per_worker": 0.5,
                       "quality_every": 1, "commit_every": 10_000, "commit_seconds": 3600, **extra})


def table_facts(output: Path, inputs: int) -> dict[str, Any]:
    """What independent readers see in the table: rows, distinct inputs, error rows, and the part
    files on disk that no commit names (invisible to every reader)."""
    import duckdb
    from deltalake import DeltaTable

    dt = DeltaTable(str(output))
    latents = dt.to_pyarrow_dataset()  # noqa: F841 - DuckDB reads it by name
    [(rows, distinct)] = duckdb.sql("SELECT count(*), count(DISTINCT uri) FROM latents").fetchall()
    committed = set(dt.file_uris())
    on_disk = {str(p) for p in output.rglob("*.parquet") if "_delta_log" not in p.parts and "_aec" not in p.parts}
    committed_paths = {u.removeprefix("file://") for u in committed}
    errors = output / "_aec" / "errors"
    return {"rows": rows, "distinct_uris": distinct, "inputs": inputs,
            "error_files": len(list(errors.rglob("*.parquet"))) if errors.exists() else 0,
            "uncommitted_parts": len(on_disk - committed_paths)}


def scenario_compress_loses_a_node(nodes: Nodes, root: Path) -> dict[str, Any]:
    """Encoded parts staged but not committed (commits only at the end) when a node with an
    encoder actor is killed: the job (or its re-run) must still hold every input exactly once."""
    from jobs.run import run_compress
    from jobs.sample_data import make_photo_collection

    nodes.workers(3)
    photos = root / "photos"
    # 40 inputs, the node lost after 4 parts of 2: 16 batches still to go, so the job is still
    # running when the kill lands (with 24 it once finished first on a busy CI machine)
    inputs = len(make_photo_collection(photos, 40, sizes=(48, 64), seed=5, jpeg_every=5))
    output = root / "latents"
    spec = compress_spec(root, "lose-node", photos, output)

    before: list[int] = []

    def ready() -> bool:  # the parts staged (none committed) when the node goes
        before[:] = [len(list(output.glob("**/part-*.parquet")))]
        return before[0] >= 4

    job, lost = lose_a_node_during(nodes, lambda: run_compress(spec, announce=lambda _: None), ready, "EncodeBatch")
    facts: dict[str, Any] = {"staged_before_loss": before[0] if before else 0, "lost_node_held_encoders": lost,
                             "job_ended_before_the_kill": job.finished_first, "first_run_error": job.error}
    if job.error:  # the documented way on: run it again; committed inputs are skipped
        nodes.workers(2)
        again = run_compress(spec, announce=lambda _: None)
        facts["rerun_skipped"] = again.rows["skipped (already committed)"]
    facts.update(table_facts(output, inputs))
    return facts


def scenario_a_node_joins(nodes: Nodes, root: Path) -> dict[str, Any]:
    """A compress job starts on one node with room for one of its two encoders; a node joins
    mid-job: the waiting encoder starts there and takes work. Prometheus, finding the nodes' export
    ports through a discovery file, sees encoder metrics from both nodes; the table holds every
    input once."""
    from jobs.run import run_compress
    from jobs.sample_data import make_photo_collection
    from tests.prometheus import Prometheus

    first = nodes.workers(1)[0]
    photos = root / "photos-join"
    # enough work that the job outlasts the new node's start (a worker process, imports, the model)
    inputs = len(make_photo_collection(photos, 64, sizes=(144, 176), seed=11, jpeg_every=5))
    output = root / "latents-join"
    # two encoders of 0.75 CPU: one fits the first node beside its read and write tasks
    spec = compress_spec(root, "join", photos, output, cpus_per_worker=0.75)
    discovery = root / "ray-targets.json"
    nodes.write_metrics_targets(discovery)
    prom = Prometheus(root / "prometheus-join", {"ray": discovery})
    seen: set[str] = set()
    try:
        job = Background(lambda: run_compress(spec, announce=lambda _: None))
        job.start()
        staged = wait_until(lambda: len(list(output.glob("**/part-*.parquet"))) >= 1, timeout=240)
        seen.update(actor_nodes("EncodeBatch"))
        joined = nodes.add()
        targets = nodes.write_metrics_targets(discovery)
        while job.is_alive():
            seen.update(actor_nodes("EncodeBatch"))
            time.sleep(0.5)
        job.join()
        query = 'sum by (instance) (ray_aec_encoder_items_total{job_name="join"})'

        def counted() -> list[dict]:  # both nodes, and every input, once the last reports are scraped
            found = prom.query(query)
            return found if len(found) >= 2 and sum(float(r["value"][1]) for r in found) >= inputs else []

        per_node = wait_until(counted, timeout=30, step=1.0) or prom.query(query)
    finally:
        prom.stop()
    facts: dict[str, Any] = {"staged_before_join": bool(staged), "first_node": first.node_id,
                             "joined_node": joined.node_id, "encoder_nodes": sorted(seen),
                             "joined_node_encoded": joined.node_id in seen, "metrics_targets": len(targets),
                             "encoded_per_node": {r["metric"]["instance"]: float(r["value"][1]) for r in per_node},
                             "error": job.error}
    facts.update(table_facts(output, inputs))
    return facts


def scenario_train_loses_a_node(nodes: Nodes, root: Path) -> dict[str, Any]:
    """Ray Train loses the node of its workers after the first checkpoint: it resumes from the
    last checkpoint on the survivors, and the registered model is the last checkpoint's."""
    from jobs.registry import ModelRegistry
    from jobs.run import run_train
    from jobs.sample_data import make_photo_collection
    from jobs.spec import parse_spec

    nodes.workers(3)
    photos = root / "photos-train"
    make_photo_collection(photos, 12, sizes=(48,), seed=7, jpeg_every=4)
    registry = root / "registry-train"
    spec = parse_spec({"kind": "train", "name": "t", "modality": "image", "input": str(photos),
                       "registry": str(registry), "model": "nodes", "epochs": 8, "batch_size": 8,
                       "patch_size": 48, "workers": 2, "cpus_per_worker": 0.5, "patches_per_item": 2,
                       "promote": "always"})
    # a checkpoint Ray Train has registered (its snapshot names it), not one still being written
    job, lost = lose_a_node_during(nodes, lambda: run_train(spec, announce=lambda _: None), lambda: any(
        "checkpoint_" in p.read_text() for p in registry.glob("_runs/nodes-*/checkpoint_manager_snapshot.json")),
        "RayTrainWorker", timeout=300)
    facts: dict[str, Any] = {"checkpoint_before_loss": any(registry.glob("_runs/nodes-*/checkpoint_*")), "lost": lost}
    facts["error"] = job.error
    if job.error is None:
        mv = ModelRegistry(str(registry)).resolve("nodes@1")
        facts["resumed_from_epoch"] = mv.info["metrics"].get("resumed_from_epoch")
        facts["epochs_run"] = mv.info["metrics"].get("epoch")
        from cluster.train import BUNDLE_FILE

        finals = sorted(registry.glob(f"_runs/nodes-*/checkpoint_*/{BUNDLE_FILE}"), key=lambda p: p.stat().st_mtime)
        registered = _bundle_of(registry, "nodes@1")
        facts["registered_is_last_checkpoint"] = bool(finals) and finals[-1].read_bytes() == registered
    return facts


def _bundle_of(registry: Path, ref: str) -> bytes:
    from jobs.models import load_model
    from jobs.registry import ModelRegistry

    return load_model(ref, ModelRegistry(str(registry)))[1]


def scenario_restore_loses_a_node(nodes: Nodes, root: Path) -> dict[str, Any]:
    """A restore on an actor pool loses a node with a restoring actor: every file is restored
    once, none half-written, no temporary file left."""
    from cluster.dataset import open_dataset
    from cluster.decode import decode_dataset
    from cluster.storage import Location
    from jobs.models import dataset_models

    output, photos = root / "latents", root / "photos"  # the compress scenario's table and inputs
    nodes.workers(3)
    ds = open_dataset(Location.of(str(output)))
    _, bundles = dataset_models(ds.metadata, str(output))
    out = root / "restored"
    before: list[int] = []

    def ready() -> bool:  # the files written when the node goes
        before[:] = [len(list(out.rglob("*.png"))) if out.exists() else 0]
        return before[0] >= 4

    job, lost = lose_a_node_during(nodes, lambda: decode_dataset(ds, bundles, out, originals=Location.of(str(photos)),
                                                                 workers=2, batch_size=2), ready, "RestoreBatch")
    facts: dict[str, Any] = {"restored_before_loss": before[0] if before else 0, "lost": lost}
    facts["error"] = job.error
    if job.result is not None:
        facts.update(rows=job.result["rows"], failed=job.result["failed"], compared=job.result["compared"],
                     psnr=job.result["quality"].get("psnr"),
                     failures=[f["reason"] for f in job.result["failures"]][:5])
    from PIL import Image

    files = [p for p in out.rglob("*") if p.is_file()]
    bad = 0
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception:  # noqa: BLE001 - counted
            bad += 1
    facts.update(files=len(files), unreadable=bad, temporary=len([p for p in files if p.name.endswith(".tmp")]),
                 table_rows=ds.count_rows())
    return facts


SCENARIOS = {name.removeprefix("scenario_"): fn for name, fn in globals().items() if name.startswith("scenario_")}


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    nodes = Nodes()
    try:
        for name in argv[1:]:
            started = time.monotonic()
            try:
                facts = SCENARIOS[name](nodes, out / "work")
            except Exception:  # noqa: BLE001 - the test shows it
                facts = {"crashed": traceback.format_exc()[-3000:]}
            facts["seconds"] = round(time.monotonic() - started, 1)
            (out / f"{name}.json").write_text(json.dumps(facts, indent=1, default=str))
            print(name, json.dumps(facts, default=str), flush=True)
    finally:
        nodes.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
