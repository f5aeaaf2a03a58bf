"""Throughput of the whole compress pipeline against (a) the encoder alone and (b) the plain
single-process loop a user would write, on the same inputs, in one run.

- pipeline: `compress_collection` (local files -> read tasks -> EncodeBatch actor pool ->
  parts -> Delta commits), on the embedded Ray instance, Ray already started;
- (a) encoder alone: the same model encoding the same, already decoded, in-memory tensors
  (analysis transform, quantization, range coding), in as many single-threaded processes as
  the pipeline has encoder actors: the compute bound on this machine;
- (b) plain loop: one process, torch's default threads: read a file, decode it, encode in
  batches, write one Parquet file.

    python -m bench.throughput --files 480 --size 256 --preset base   # ~6 min on 2 cores
    python -m bench.throughput --files 800 --size 128 --preset tiny   # where fixed costs dominate
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np


def _encode_part(args: tuple[bytes, list[str], int]) -> float:
    import torch

    from aecore import load_bundle

    bundle, paths, batch = args
    torch.set_num_threads(1)
    comp = load_bundle(bundle)
    samples = [comp.modality.load(Path(p).read_bytes()) for p in paths]  # decoded before the clock starts
    t0 = time.perf_counter()
    for i in range(0, len(samples), batch):
        comp.encode(samples[i : i + batch], [False] * len(samples[i : i + batch]))
    return time.perf_counter() - t0


def encoder_alone(bundle: bytes, paths: list[Path], processes: int, batch: int) -> float:
    parts = [[str(p) for p in paths[i::processes]] for i in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        times = pool.map(_encode_part, [(bundle, part, batch) for part in parts])
    # the slowest process bounds the parallel encode; spawn/decode time is excluded
    return max(times)


def plain_loop(bundle: bytes, paths: list[Path], out: Path, batch: int) -> float:
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from aecore import load_bundle

    comp = load_bundle(bundle)
    t0 = time.perf_counter()
    writer = None
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            chunk = paths[i : i + batch]
            data = [p.read_bytes() for p in chunk]
            samples = [comp.modality.load(d) for d in data]
            encoded = comp.encode(samples, [False] * len(samples))
            table = pa.table({"uri": [str(p) for p in chunk], "sha256": [hashlib.sha256(d).hexdigest() for d in data],
                              "bytes": [len(d) for d in data], "payload": [e.payload for e in encoded],
                              "latent": [np.asarray(e.latent, dtype=np.float32).ravel().tolist() for e in encoded]})
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
    writer.close()
    return time.perf_counter() - t0


def pipeline(bundle: bytes, root: Path, out: Path, workers: int, batch: int) -> dict:
    import shutil

    from cluster.compress import compress_collection
    from cluster.runtime import ensure_ray
    from jobs.run import compress_request
    from jobs.spec import parse_spec

    ensure_ray(num_cpus=None, log_to_driver=False)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    job = parse_spec({"kind": "compress", "name": "bench", "input": str(root), "output": str(out), "model": "bench@1",
                      "workers": workers, "batch_size": batch, "commit_every": 1, "commit_seconds": 60.0})
    summary = compress_collection(compress_request(job, bundle, "bench", 1))
    wall = time.perf_counter() - t0
    timeline = summary["run"]["timeline"]
    (t_first, r_first), (t_last, r_last) = next(p for p in timeline if p[1] > 0), timeline[-1]
    return {"seconds": wall, "job_seconds": summary["run"]["seconds"], "rows": summary["rows"],
            "first_commit_s": t_first,
            "steady_items_per_s": (r_last - r_first) / (t_last - t_first) if t_last > t_first else None}


def main() -> None:
    from bench.common import WORK, collection, machine, save, speed_bundle

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=800)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=256, help="photo crop size in pixels")
    parser.add_argument("--preset", default="base", choices=["tiny", "base"])
    args = parser.parse_args()
    bundle = speed_bundle(args.preset)
    root = collection(args.files, sizes=(args.size,), seed=13)
    paths = sorted(p for p in root.iterdir() if p.suffix == ".png")[: args.files]
    mb = sum(p.stat().st_size for p in paths) / 1e6
    alone = encoder_alone(bundle, paths, args.workers, args.batch)
    plain = plain_loop(bundle, paths, WORK / "plain.parquet", args.batch)
    cold = pipeline(bundle, root, WORK / "latents-cold", args.workers, args.batch)
    warm = pipeline(bundle, root, WORK / "latents-warm", args.workers, args.batch)
    n = len(paths)
    rows = {
        "encoder alone (compute bound)": alone,
        "plain single-process loop": plain,
        "aec pipeline (first job)": cold["seconds"],
        "aec pipeline (second job)": warm["seconds"],
    }
    steady = warm["steady_items_per_s"]
    result = {"command": f"python -m bench.throughput --files {args.files} --size {args.size} --preset {args.preset} "
                         f"--workers {args.workers} --batch {args.batch}",
              "preset": args.preset, "size": args.size, "pipeline_first_commit_s": warm["first_commit_s"],
              "pipeline_steady_items_per_s": steady,
              "machine": machine(), "files": n, "input_mb": mb,
              "results": {k: {"seconds": v, "items_per_s": n / v, "mb_per_s": mb / v} for k, v in rows.items()},
              "ratios": {"pipeline / encoder alone": alone / warm["seconds"],
                         "pipeline / plain loop": plain / warm["seconds"],
                         "first job / encoder alone": alone / cold["seconds"],
                         "pipeline steady state / encoder alone": steady * alone / n if steady else None,
                         "pipeline steady state / plain loop": steady * plain / n if steady else None}}
    print(f"{n} files ({args.size} px), {mb:.1f} MB, {args.preset} model, {args.workers} encoder actors vs "
          f"{args.workers} encoder processes; pipeline: first commit at {warm['first_commit_s']:.1f} s, "
          f"steady state {steady or 0:.1f} items/s")
    for k, v in result["results"].items():
        print(f"  {k:32s} {v['seconds']:7.1f} s  {v['items_per_s']:7.1f} items/s  {v['mb_per_s']:6.2f} MB/s")
    for k, v in result["ratios"].items():
        print(f"  {k:40s} {v:.2f}x" if v is not None else f"  {k:40s} -")
    print(f"written: {save(f'throughput-{args.preset}-{args.size}', result)}")


if __name__ == "__main__":
    main()
