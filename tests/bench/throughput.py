"""Throughput of the whole compress pipeline against (a) the encoder alone and (b) the plain
single-process loop a user would write, on the same inputs, in one run.

- pipeline: `compress_collection` (local files -> read tasks -> EncodeBatch actor pool ->
  staging -> committed Parquet), on the embedded Ray instance, Ray already started;
- (a) encoder alone: the same model encoding the same, already decoded, in-memory tensors
  (analysis transform, quantization, range coding), in as many single-threaded processes as
  the pipeline has encoder actors: the compute bound on this machine;
- (b) plain loop: one process, torch's default threads: read a file, decode it, encode in
  batches, write one Parquet file.

    python -m tests.bench.throughput --files 800          # ~3 min on 2 cores
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
        t0 = time.perf_counter()
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

    from cluster.compress import CompressRequest, compress_collection
    from cluster.runtime import ensure_ray
    from cluster.storage import Location

    ensure_ray(num_cpus=None, log_to_driver=False)
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = compress_collection(CompressRequest(bundle=bundle, model_name="bench", model_version=1,
                                                  input=Location.of(str(root)), output=Location.of(str(out)),
                                                  workers=workers, batch_size=batch, commit_every=64, commit_seconds=60.0))
    wall = time.perf_counter() - t0
    return {"seconds": wall, "rows": summary["rows"], "report_seconds": None}


def main() -> None:
    from tests.bench.common import WORK, collection, machine, model_bundle, save

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=800)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    bundle = model_bundle()
    root = collection(args.files)
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
    result = {"command": f"python -m tests.bench.throughput --files {args.files} --workers {args.workers} --batch {args.batch}",
              "machine": machine(), "files": n, "input_mb": mb,
              "results": {k: {"seconds": v, "items_per_s": n / v, "mb_per_s": mb / v} for k, v in rows.items()},
              "ratios": {"pipeline / encoder alone": alone / warm["seconds"],
                         "pipeline / plain loop": plain / warm["seconds"],
                         "first job / encoder alone": alone / cold["seconds"]}}
    print(f"{n} files, {mb:.1f} MB, {args.workers} encoder actors vs {args.workers} encoder processes")
    for k, v in result["results"].items():
        print(f"  {k:32s} {v['seconds']:7.1f} s  {v['items_per_s']:7.1f} items/s  {v['mb_per_s']:6.2f} MB/s")
    for k, v in result["ratios"].items():
        print(f"  {k:32s} {v:.2f}x")
    print(f"written: {save('throughput', result)}")


if __name__ == "__main__":
    main()
