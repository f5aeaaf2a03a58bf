"""Peak memory of a whole compress job — the driver and every Ray process it starts (GCS,
raylet, dashboard, read/stage workers, encoder actors) — at N and at 10·N inputs.

Memory is the proportional set size (PSS, /proc/PID/smaps_rollup) summed over the job's
process tree, sampled every 0.2 s: shared pages (the object store, shared libraries) are
counted once, not once per process as RSS would.

    python -m bench.memory --files 200              # N=200 and 10N=2000, ~4 min on 2 cores
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_pss(root: int) -> tuple[int, int]:
    tree, todo, seen = _children(), [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(tree.get(pid, []))
    return sum(_pss(p) for p in seen), len(seen)


def run_job(spec: Path) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", "compress", str(spec), "--overwrite"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, procs, samples = 0, 0, []
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, procs
        t0 = time.perf_counter()
        while not stop.is_set():
            pss, n = tree_pss(proc.pid)
            samples.append((round(time.perf_counter() - t0, 2), pss))
            if pss > peak:
                peak, procs = pss, n
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    stop.set()
    thread.join()
    assert proc.returncode == 0, out[-2000:]
    return {"peak_bytes": peak, "processes_at_peak": procs, "samples": samples[::5]}


def main() -> None:
    from aecore import dump_bundle  # noqa: F401
    from bench.common import WORK, collection, machine, model_bundle, save
    from jobs.registry import ModelRegistry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    registry = WORK / "mem-registry"
    reg = ModelRegistry(str(registry))
    if not reg.versions("bench"):
        reg.register("bench", model_bundle(), {"modality": "image"})
    results = {}
    for n in (args.files, 10 * args.files):
        root = collection(n, sizes=(48, 64, 80), seed=21)
        spec = WORK / f"mem-{n}.yaml"
        spec.write_text(f"kind: compress\nname: mem-{n}\nmodality: image\ninput: {root}\noutput: {WORK}/mem-latents-{n}\n"
                        f"registry: {registry}\nmodel: bench\nworkers: 2\n")
        results[n] = run_job(spec)
        peak, procs = results[n]["peak_bytes"] / 2**20, results[n]["processes_at_peak"]
        print(f"  {n:6d} inputs: peak {peak:8.1f} MiB over {procs} processes")
    small, large = results[args.files]["peak_bytes"], results[10 * args.files]["peak_bytes"]
    result = {"command": f"python -m bench.memory --files {args.files}", "machine": machine(),
              "peak_mib": {str(n): r["peak_bytes"] / 2**20 for n, r in results.items()},
              "processes_at_peak": {str(n): r["processes_at_peak"] for n, r in results.items()},
              "ratio_10n_over_n": large / small,
              "timeline_mib": {str(n): [(t, b / 2**20) for t, b in r["samples"]] for n, r in results.items()}}
    print(f"  10N / N peak memory: {large / small:.2f}x (target <= 1.2)")
    print(f"written: {save('memory', result)}")


if __name__ == "__main__":
    main()
