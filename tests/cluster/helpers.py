"""Building a small real dataset in-process, without Ray: the same read, encode, stage and commit
steps a compress job runs in its tasks and actors, called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from aecore import build_model, dump_bundle, load_bundle
from cluster.commit import DatasetCommitter
from cluster.encode import EncodeBatch
from cluster.read import read_inputs
from cluster.schema import latent_schema
from cluster.stage import stage_part
from cluster.storage import Location
from tests.conftest import png_bytes


def tiny_bundle() -> bytes:
    torch.manual_seed(0)
    return dump_bundle(build_model("image-conv", "tiny").uniform_prior(), "image-conv", "image")


def write_photos(root: Path, count: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        p = root / f"p{i}.png"
        p.write_bytes(png_bytes((rng.random((20 + i, 24, 3)) * 255).astype(np.uint8)))
        paths.append(p)
    return paths


def build_dataset(inputs: Path, output: Path, bundle: bytes, extra_rows: list[dict] | None = None,
                  metadata: dict | None = None) -> Location:
    """Encode every PNG under ``inputs`` into a committed dataset at ``output``; ``extra_rows``
    (crafted rows) are committed as one more part."""
    from cluster.compress import dataset_metadata

    comp = load_bundle(bundle)
    meta = {**dataset_metadata(comp, "tiny", 1, Location.of(str(inputs)), None), "registry": "", **(metadata or {})}
    schema = latent_schema(meta)
    out = Location.of(str(output))
    committer = DatasetCommitter(out, meta, schema, run_id="test")
    committer.open()
    paths = sorted(str(p) for p in inputs.rglob("*.png"))
    read = read_inputs(pa.table({"path": paths}), str(inputs), {}, 2**20)
    encoded = EncodeBatch(bundle, "tiny", 1, str(inputs), "", quality_every=1)(read)
    parts = [encoded]
    if extra_rows:
        parts.append(pa.Table.from_pylist(extra_rows, schema=encoded.schema))
    descriptors = [stage_part(t, out.url, "test", schema.serialize().to_pybytes(), {}).to_pylist()[0] for t in parts]
    committer.commit(descriptors)
    committer.finish("completed")
    return out
