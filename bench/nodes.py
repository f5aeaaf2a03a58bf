"""Scale-out: compress and restore throughput on 1, 2 and 3 worker nodes of one CPU each.

    python -m bench.nodes --files 240 --size 128

A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``, as
tests/cluster/nodes.py starts it): a head without CPUs (the driver, the commits) and ``k`` worker
nodes of one CPU, each its own raylet and object store; one encoder actor of 0.75 CPU per node
(a whole CPU would leave its read and write tasks none: the first version of this benchmark asked
for that and never started; the job now says so), one restore actor per node.
The same job runs on k = 1, 2, 3 into a fresh table each time. Reported per k: the whole job's
seconds and files/s, the steady rate between the first and last commit, the time the driver
spent committing, and the driver's peak resident memory while the job ran (sampled every 50 ms).
The simulated nodes share this machine's cores, so past its core count the curve measures Ray's
overhead, not more compute: read the figures with ``cpus`` beside them.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from tests.cluster.nodes import Nodes  # noqa: I001 - sets Ray's single-machine mode before ray is imported


class PeakRSS(threading.Thread):
    """The driver's peak resident set size while it runs, sampled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self.stop = 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            with open("/proc/self/status") as f:
                rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            self.peak = max(self.peak, rss)

    def __enter__(self) -> PeakRSS:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join()


def compress_once(root: Path, photos: Path, out: Path, workers: int, batch: int, cpus: float) -> dict[str, Any]:
    import cluster.compress
    from cluster.commit import DatasetCommitter as Committer
    from jobs.run import run_compress
    from jobs.spec import parse_spec

    spec = parse_spec({"kind": "compress", "name": "nodes", "modality": "image", "input": str(photos),
                       "output": str(out), "registry": str(root / "registry"), "model": "zoo:image-small",
                       "lossless": False, "workers": workers, "cpus_per_worker": cpus, "batch_size": batch,
                       "commit_every": 4, "commit_seconds": 60})
    spent, summaries = [0.0], []
    original, collect = Committer.commit, cluster.compress.compress_collection

    def keep(*a: Any, **k: Any) -> Any:  # the run's summary (its commit timeline)
        summaries.append(collect(*a, **k))
        return summaries[-1]

    def timed(self: Any, *a: Any, **k: Any) -> Any:  # the driver's time in Delta commits
        t = time.perf_counter()
        try:
            return original(self, *a, **k)
        finally:
            spent[0] += time.perf_counter() - t

    Committer.commit = timed  # type: ignore[method-assign]
    cluster.compress.compress_collection = keep
    try:
        with PeakRSS() as rss:
            t0 = time.perf_counter()
            run_compress(spec, announce=lambda _: None)
            wall = time.perf_counter() - t0
    finally:
        Committer.commit = original  # type: ignore[method-assign]
        cluster.compress.compress_collection = collect
    timeline = summaries[-1]["run"]["timeline"]
    steady = None
    if len(timeline) >= 2:
        (t1, r1), (t2, r2) = next(p for p in timeline if p[1] > 0), timeline[-1]
        steady = (r2 - r1) / (t2 - t1) if t2 > t1 else None
    return {"seconds": wall, "rows": summaries[-1]["encoded"], "steady_files_per_s": steady,
            "commit_seconds": spent[0], "commits": len(timeline), "driver_peak_rss_mb": rss.peak / 2**20,
            "timeline": timeline}


def restore_once(out: Path, dest: Path, workers: int, batch: int) -> dict[str, Any]:
    import shutil

    from cluster.dataset import open_dataset
    from cluster.decode import decode_dataset
    from cluster.storage import Location
    from jobs.models import dataset_models

    shutil.rmtree(dest, ignore_errors=True)
    ds = open_dataset(Location.of(str(out)))
    _, bundles = dataset_models(ds.metadata, str(out))
    with PeakRSS() as rss:
        t0 = time.perf_counter()
        summary = decode_dataset(ds, bundles, dest, workers=workers, batch_size=batch)
        wall = time.perf_counter() - t0
    return {"seconds": wall, "rows": summary["rows"], "failed": summary["failed"],
            "driver_peak_rss_mb": rss.peak / 2**20}


def main() -> None:
    import os
    import shutil

    from bench.common import WORK, collection, machine, save

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=240)
    parser.add_argument("--size", type=int, default=128, help="photo crop size in pixels")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--nodes", default="1,2,3")
    parser.add_argument("--cpus", type=float, default=0.5, help="CPUs each encoder actor asks for")
    args = parser.parse_args()
    photos = collection(args.files, sizes=(args.size,), seed=17)
    mb = sum(p.stat().st_size for p in photos.iterdir()) / 1e6
    root = WORK / "nodes"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    nodes = Nodes()
    results: dict[str, Any] = {}
    try:
        nodes.workers(1)
        compress_once(root, photos, root / "warm-up", 1, args.batch, args.cpus)  # imports, zoo model cache: not timed
        for k in (int(x) for x in args.nodes.split(",")):
            nodes.workers(k)
            c = compress_once(root, photos, root / f"latents-{k}", k, args.batch, args.cpus)
            r = restore_once(root / f"latents-{k}", root / f"restored-{k}", k, args.batch)
            results[str(k)] = {"compress": c, "restore": r}
            print(f"{k} node(s): compress {c['seconds']:6.1f} s {c['rows'] / c['seconds']:5.2f} files/s "
                  f"(steady {c['steady_files_per_s'] or 0:5.2f}), {c['commits']} commits {c['commit_seconds']:.2f} s, "
                  f"driver {c['driver_peak_rss_mb']:.0f} MB | restore {r['seconds']:6.1f} s "
                  f"{r['rows'] / r['seconds']:5.2f} files/s, driver {r['driver_peak_rss_mb']:.0f} MB", flush=True)
    finally:
        nodes.shutdown()
    one = results.get("1")
    scaling = {}
    if one:
        for k, v in results.items():
            scaling[k] = {"compress": one["compress"]["seconds"] / v["compress"]["seconds"],
                          "restore": one["restore"]["seconds"] / v["restore"]["seconds"]}
    save("nodes", {"command": f"python -m bench.nodes --files {args.files} --size {args.size} --batch {args.batch} "
                              f"--nodes {args.nodes} --cpus {args.cpus:g}",
                   "files": args.files, "input_mb": mb, "cpus": os.cpu_count(), "machine": machine(),
                   "results": results, "speed-up over one node": scaling})
    for k, v in scaling.items():
        print(f"  {k} node(s): compress x{v['compress']:.2f}, restore x{v['restore']:.2f} against one node")


if __name__ == "__main__":
    main()
