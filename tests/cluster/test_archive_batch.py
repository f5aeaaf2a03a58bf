"""An archive's encoder batch (cluster.encode.EncodeBatch with ArchiveSettings), run in process:
files the primed context-mixing coder (``aec-cm``, the text model's primer) wins one by one still
join a solid block where the block is smaller — a block coded after the same primer, whose rows
name the model it needs."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pytest

from aecore import load_bundle
from aecore.archive import CodecContext, SolidBlocks, choose
from aecore.archive.solid import member_bytes
from aecore.zoo import zoo_bundle
from cluster.encode import ArchiveSettings, EncodeBatch, LearnedModel
from jobs.sample_data import make_text_collection


def test_files_the_primed_coder_wins_alone_join_a_smaller_primed_block(tmp_path):
    make_text_collection(tmp_path, 12, max_bytes=3000, seed=5)
    files = sorted(tmp_path.iterdir())
    bundle = zoo_bundle("text-cm")
    ctx = CodecContext(compressors={"text": load_bundle(bundle, lossless=True)})
    alone = {p.name: choose(p.read_bytes(), "text", ctx) for p in files}
    assert sum(c.codec == "aec-cm" for c in alone.values()) >= 8  # the primed coder wins these one by one

    settings = ArchiveSettings(modality="auto", models=(LearnedModel("text", "zoo:text-cm", 1, bundle),))
    batch = pa.table({"path": [str(p) for p in files], "bytes": [p.read_bytes() for p in files]})
    rows = EncodeBatch(None, "", 0, str(tmp_path), "", quality_every=1, archive=settings)(batch).to_pylist()
    holders = [r for r in rows if r["payload"]]
    assert len(holders) == 1 and all(r["solid"] == holders[0]["id"] for r in rows)
    assert len(holders[0]["payload"]) < sum(len(c.payload) for c in alone.values())  # why the block was kept
    assert all(r["codec"] == "solid-aec-cm" and r["model"] == "zoo:text-cm" and r["model_version"] == 1 for r in rows)
    assert all(json.loads(r["quality"])["learned"] == 1.0 for r in rows)
    stream = SolidBlocks().stream(holders[0]["id"], ctx, holders[0]["payload"])
    for r in rows:  # each member back exactly from the block, with the model the rows name
        data = (tmp_path / r["key"]).read_bytes()
        assert member_bytes(stream, r["offset"], len(data), hashlib.sha256(data).hexdigest()) == data
    with pytest.raises(ValueError, match="names no text model"):
        SolidBlocks().stream(holders[0]["id"], CodecContext(), holders[0]["payload"])
