"""A compress job on Ray Data: read the collection, encode it in an actor pool, write
the latents dataset.

    read_binary_files (tasks) -> EncodeBatch (actor pool) -> LatentDatasink (tasks + commit)
"""

from __future__ import annotations

import math
import posixpath
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from aecore import read_bundle, load_bundle
from cluster.encode import EncodeBatch
from cluster.runtime import actor_cpus
from cluster.schema import latent_schema
from cluster.sink import MANIFEST, LatentDatasink
from cluster.storage import Location, StorageError, list_collection

__all__ = ["CompressRequest", "compress_collection"]


@dataclass(frozen=True)
class CompressRequest:
    bundle: bytes
    model_name: str
    model_version: int
    input: Location
    output: Location
    workers: int = 2
    gpus: float = 0.0
    batch_size: int = 32
    cpus_per_worker: float | None = None
    overwrite: bool = False
    metadata: dict[str, Any] | None = None  # extra dataset-level metadata (job name, registry, ...)


def compress_collection(req: CompressRequest) -> dict[str, Any]:
    """Run the job; return the committed dataset's summary (rows, bytes, ratio, quality, time)."""
    started = time.perf_counter()
    compressor = load_bundle(req.bundle)
    modality = compressor.modality
    _check_output(req.output, req.overwrite)
    files = list_collection(req.input, modality.extensions)
    bundle_info = read_bundle(req.bundle)
    metadata = {
        "format": "aec-dataset/1",
        "modality": modality.name,
        "model": req.model_name,
        "model_version": req.model_version,
        "model_ref": f"{req.model_name}@{req.model_version}",
        "model_class": bundle_info["model"],
        "codec": compressor.codec.name,
        "payload_version": 1,
        "latent_shape": list(compressor.query_latent_shape),
        "latent": "quantized g_a(x) of the input resized to the model's native size",
        **(req.metadata or {}),
    }
    schema = latent_schema(int(np.prod(compressor.query_latent_shape)), metadata)
    run_id = uuid.uuid4().hex[:8]
    staging = Location.of(posixpath.join(posixpath.dirname(req.output.url.rstrip("/")),
                                         f".{posixpath.basename(req.output.url.rstrip('/'))}.staging-{run_id}"))
    cpus = actor_cpus(req.workers, req.cpus_per_worker)
    data = ray.data.read_binary_files(files, include_paths=True, filesystem=req.input.pyarrow_fs())
    data = data.map_batches(
        EncodeBatch,
        fn_constructor_kwargs={
            "bundle": ray.put(req.bundle),
            "model_name": req.model_name,
            "model_version": req.model_version,
            "root": req.input.path,
            "uri_prefix": req.input.uri(""),
            "threads": max(1, math.floor(cpus)),
        },
        compute=ray.data.ActorPoolStrategy(size=req.workers),
        batch_size=req.batch_size,
        batch_format="pyarrow",
        num_cpus=cpus,
        num_gpus=req.gpus or None,
    )
    sink = LatentDatasink(output=req.output, staging=staging, schema=schema, run_id=run_id, replace=req.overwrite,
                          manifest_extra={"metadata": metadata, "input": req.input.url, "inputs": len(files)})
    data.write_datasink(sink)
    summary = dict(sink.summary or {})
    summary.update(inputs=len(files), seconds=time.perf_counter() - started, output=req.output.url, run_id=run_id)
    return summary


def _check_output(output: Location, overwrite: bool) -> None:
    manifest = posixpath.join(output.path, MANIFEST)
    try:
        exists = output.fs.exists(manifest)
    except PermissionError:
        raise StorageError(f"output {output.url!r} is not accessible: permission denied; check credentials") from None
    if exists and not overwrite:
        raise StorageError(f"output {output.url!r} already holds a dataset; choose another output or pass --overwrite")

