"""The latents table at scale: commit cost and a re-run's open at 1 M rows in 10 k parts.

    python -m bench.table_scale [--parts 10000] [--rows-per-part 100] [--parts-per-commit 10]

Builds a synthetic table with the real committer (cluster.commit: conflict-checked Delta
commits, ids read back incrementally), then measures
- the cost of one commit as the table grows (median over each stretch of commits);
- a re-run's open (load the table, read every committed id and uri as Arrow arrays) and its
  `committed()` check of 1 M input uris: time and peak memory, in a fresh process;
- `aec datasets optimize` and a commit after it;
- reading: DuckDB over the Arrow dataset, Polars scan_delta, a `key LIKE` selection.

Rows are synthetic (small payloads, 8-value latents): what is measured is the table, not a codec.
Writes docs/bench/table_scale.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).parents[1]
META = {"model_ref": "synthetic@1", "bundle_sha256": "0" * 64, "latent_shape": [8], "modality": "image"}


def _part(c, start: int, n: int, rng: np.random.Generator) -> dict:
    from cluster.stage import describe_part, part_name, write_part

    ids = [f"{i:032x}" for i in range(start, start + n)]
    keys = [f"d{i // 1000:04d}/f{i:07d}.png" for i in range(start, start + n)]
    table = pa.table({
        "id": ids, "uri": [f"s3://bucket/photos/{k}" for k in keys], "key": keys, "sha256": ids,
        "modality": ["image"] * n, "model": ["synthetic"] * n, "model_version": pa.array([1] * n, pa.int32()),
        "codec": ["aec-image"] * n,
        "bytes": rng.integers(10_000, 100_000, n), "shape": [[64, 64, 3]] * n,
        "payload": [rng.bytes(32) for _ in range(n)], "payload_bytes": [32] * n,
        "latent": rng.standard_normal((n, 8)).astype(np.float32).tolist(), "quality": [None] * n,
        "entry": ["file"] * n, "link": [None] * n, "mode": [None] * n, "mtime_ns": [None] * n,
    }).cast(c.schema)
    name = part_name(c.run_id, ids)
    return {**describe_part(name, table, write_part(c.output, name, table)), "errors": "[]"}


def build(out: Path, parts: int, rows_per_part: int, per_commit: int) -> list[dict]:
    from cluster.commit import DatasetCommitter
    from cluster.schema import latent_schema
    from cluster.storage import Location

    rng = np.random.default_rng(0)
    c = DatasetCommitter(Location.of(str(out)), META, latent_schema(META), run_id="bench")
    c.open()
    marks, stretch, written = [], [], 0
    t_build = time.perf_counter()
    while written < parts:
        group = [_part(c, (written + j) * rows_per_part, rows_per_part, rng) for j in range(per_commit)]
        t0 = time.perf_counter()
        c.commit(group)
        stretch.append(time.perf_counter() - t0)
        written += per_commit
        if written % (parts // 10) == 0:
            marks.append({"parts": written, "rows": written * rows_per_part,
                          "commit_ms_median": round(1000 * statistics.median(stretch), 1),
                          "commit_ms_max": round(1000 * max(stretch), 1)})
            print(f"{marks[-1]}  ({time.perf_counter() - t_build:.0f} s)", flush=True)
            stretch = []
    c.finish("completed")
    return marks


_RERUN = """
import json, sys, time
def hwm():  # this process's peak RSS (ru_maxrss would carry the parent's over exec)
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
t0 = time.perf_counter()
from cluster.commit import DatasetCommitter
from cluster.schema import latent_schema
from cluster.storage import Location
base = hwm()
meta = json.loads(sys.argv[2])
t1 = time.perf_counter()
c = DatasetCommitter(Location.of(sys.argv[1]), meta, latent_schema(meta), run_id="rerun")
c.open()
t2 = time.perf_counter()
n = int(sys.argv[3])
uris = [f"s3://bucket/photos/d{i // 1000:04d}/f{i:07d}.png" for i in range(n)]
t3 = time.perf_counter()
done = c.committed(uris)
t4 = time.perf_counter()
print(json.dumps({"open_s": round(t2 - t1, 3), "committed_check_s": round(t4 - t3, 3), "found": sum(done),
                  "rows": c.rows, "import_s": round(t1 - t0, 3),
                  "peak_rss_mb": round(hwm() / 1024, 1), "rss_after_imports_mb": round(base / 1024, 1),
                  "open_and_check_mb": round((hwm() - base) / 1024, 1)}))
"""


def rerun(out: Path, rows: int) -> dict:
    res = subprocess.run([sys.executable, "-c", _RERUN, str(out), json.dumps(META), str(rows)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def read_side(out: Path) -> dict:
    import duckdb
    import polars as pl

    from cluster.dataset import open_dataset
    from cluster.storage import Location

    t0 = time.perf_counter()
    ds = open_dataset(Location.of(str(out)))
    t1 = time.perf_counter()
    latents = ds.dataset  # noqa: F841 - DuckDB reads it by name
    n, _ = duckdb.sql("SELECT count(*), sum(bytes) FROM latents").fetchall()[0]
    t2 = time.perf_counter()
    k = duckdb.sql("SELECT count(*) FROM latents WHERE key LIKE 'd0042/%'").fetchall()[0][0]
    t3 = time.perf_counter()
    p = pl.scan_delta(str(out)).filter(pl.col("key").str.starts_with("d0042/")).select(pl.len()).collect().item()
    t4 = time.perf_counter()
    return {"open_dataset_s": round(t1 - t0, 3), "duckdb_count_sum_s": round(t2 - t1, 3), "rows": n,
            "duckdb_key_like_s": round(t3 - t2, 3), "key_like_rows": k, "polars_scan_delta_filter_s": round(t4 - t3, 3),
            "polars_rows": p}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", type=int, default=10_000)
    ap.add_argument("--rows-per-part", type=int, default=100)
    ap.add_argument("--parts-per-commit", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-table")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "bench" / "table_scale.json")
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rows = args.parts * args.rows_per_part
    t0 = time.perf_counter()
    marks = build(args.out, args.parts, args.rows_per_part, args.parts_per_commit)
    build_s = time.perf_counter() - t0
    before = rerun(args.out, rows)
    print("re-run open:", before, flush=True)
    reads = read_side(args.out)
    print("readers:", reads, flush=True)

    from cluster.maintain import optimize
    from cluster.storage import Location

    t0 = time.perf_counter()
    compacted = optimize(Location.of(str(args.out)))
    optimize_s = time.perf_counter() - t0
    after = rerun(args.out, rows)
    reads_after = read_side(args.out)
    print("after optimize:", compacted, f"{optimize_s:.1f} s", after, reads_after, flush=True)
    result = {
        "command": " ".join(["python -m bench.table_scale", *sys.argv[1:]]),
        "machine": f"{__import__('os').cpu_count()} CPUs, local disk",
        "parts": args.parts, "rows": rows, "parts_per_commit": args.parts_per_commit,
        "commits": args.parts // args.parts_per_commit, "build_s": round(build_s, 1),
        "commit_cost_as_the_table_grows": marks,
        "rerun_open": before, "readers": reads,
        "optimize": {"seconds": round(optimize_s, 1), **compacted["rows"], "rerun_open_after": after,
                     "readers_after": reads_after},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
