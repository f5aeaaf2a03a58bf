"""Restore throughput: the Ray Data restore (`aec decode`, actor pool) against the single-process
loop it replaces (`aec decode --workers 0`), on the same dataset, on this machine.

    python -m bench.restore [--count 120] [--workers 2]

A collection of photo crops (scikit-image's samples: fine for a speed figure, never for an R-D
one) is compressed once with the shipped `zoo:image-small`; then it is restored both ways into
fresh folders, and the two restores are compared file by file (they must be the same bytes:
the integer synthesis makes decoding exact whatever process or thread count runs it).
Writes docs/bench/restore.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "bench-restore")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "bench" / "restore.json")
    args = ap.parse_args()

    from aecore import load_bundle
    from cluster.compress import CompressRequest, compress_collection
    from cluster.dataset import open_dataset
    from cluster.decode import decode_dataset
    from cluster.runtime import ensure_ray
    from cluster.storage import Location
    from jobs.models import load_model
    from jobs.registry import ModelRegistry
    from jobs.sample_data import make_photo_collection

    shutil.rmtree(args.work, ignore_errors=True)
    photos = args.work / "photos"
    make_photo_collection(photos, args.count, sizes=(128, 192, 256), seed=5)
    mv, bundle = load_model("zoo:image-small", ModelRegistry(str(args.work / "reg")))
    ensure_ray(log_to_driver=False)
    out = Location.of(str(args.work / "latents"))
    compress_collection(CompressRequest(
        bundle=bundle, model_name=mv.name, model_version=mv.version, input=Location.of(str(photos)), output=out,
        workers=args.workers, gpus=0, batch_size=8, cpus_per_worker=None, quality_every=1_000_000,
        max_file_bytes=2**30, commit_every=8, commit_seconds=10, lossless=None, rate_point=None))
    ds = open_dataset(out)
    pixels = sum(h * w for h, w, *_ in ds.dataset.to_table(columns=["shape"]).column("shape").to_pylist())
    load_bundle(bundle)  # warm imports before timing
    runs = {}
    for name, workers in (("single process (--workers 0)", 0), (f"Ray Data, {args.workers} actors", args.workers)):
        target = args.work / f"restored-{workers}"
        t0 = time.perf_counter()
        summary = decode_dataset(ds, {"image": bundle}, target, workers=workers)
        seconds = time.perf_counter() - t0
        assert summary["failed"] == 0, summary["failures"][:3]
        runs[name] = {"seconds": round(seconds, 2), "files_per_s": round(summary["rows"] / seconds, 2),
                      "megapixels_per_s": round(pixels / 1e6 / seconds, 3), "files": summary["rows"], "dir": target}
        print(name, runs[name], flush=True)
    trees = [_tree(r.pop("dir")) for r in runs.values()]
    result = {
        "command": " ".join(["python -m bench.restore", *sys.argv[1:]]),
        "machine": f"{os.cpu_count()} CPUs, no GPU",
        "model": "zoo:image-small", "files": args.count, "megapixels": round(pixels / 1e6, 2),
        "runs": runs, "same_bytes_both_ways": trees[0] == trees[1] and len(trees[0]) == args.count,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
