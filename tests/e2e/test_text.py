"""Text end to end: fine-tune the causal text model from the zoo, compress losslessly (each piece
by the model or by zstd with the collection's dictionary), restore every byte."""

from __future__ import annotations

import json
import re

import duckdb
import pytest

from jobs.sample_data import make_text_collection
from tests import tables
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_text_archive_restores_byte_exact(ray_local, tmp_path):
    texts = tmp_path / "texts"
    make_text_collection(texts, 12, max_bytes=4000)
    (texts / "sub" / "deeper").mkdir(parents=True)  # a tree: decode restores it as it was
    for i, p in enumerate(sorted(texts.glob("*.txt"))[:2]):
        p.rename(texts / ("sub" if i else "sub/deeper") / p.name)
    (texts / "empty.txt").write_bytes(b"")
    (texts / "invalid-utf8.txt").write_bytes(b"caf\xe9 \xff\xfe\x00 not UTF-8 \xc3(")
    (texts / "long.txt").write_bytes(sorted(texts.glob("*.txt"))[0].read_bytes() * 4)
    train = tmp_path / "train.yaml"
    train.write_text(f"kind: train\nname: t\nmodality: text\ninput: {texts}\nregistry: {tmp_path}/reg\n"
                     "model: texts\nsteps: 6\nbatch_size: 8\npatch_size: 256\nworkers: 2\npatches_per_item: 4\n")
    trained = run_cli("train", str(train))
    # fine-tuning never makes it worse (issue 24 item 2): the better of the zoo model and the
    # fine-tuned one on the held-out tenth is registered, and the output says which
    from jobs.registry import ModelRegistry

    kept = ModelRegistry(str(tmp_path / "reg")).resolve("texts@1").info["kept"]
    figures = kept["heldout"]
    assert set(figures) == {"fine-tuned", "starting point"} and kept["model"] in figures
    assert figures[kept["model"]] == min(figures.values())
    assert re.search(r"kept\W+(fine-tuned|starting point)", trained).group(1) == kept["model"], trained
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: c\nmodality: text\ninput: {texts}\noutput: {tmp_path}/out\n"
                    f"registry: {tmp_path}/reg\nmodel: texts\nbatch_size: 8\nworkers: 2\nquality_every: 1\n")
    out = run_cli("compress", str(spec))
    assert "errors" in out and "completed with" not in out  # no error rows: every file encodes
    meta = tables.dataset(tmp_path / "out").metadata
    assert meta["lossless"] is True and meta["modality"] == "text"

    decoded = run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "restored"), "--originals", str(texts))
    assert tables.dataset(tmp_path / "out").count_rows() == 15

    def tree(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert tree(tmp_path / "restored") == tree(texts)  # `diff -r` finds nothing
    assert "exact=1.000" in decoded

    latents = tables.dataset(tmp_path / "out").dataset  # noqa: F841 - DuckDB reads it by name
    [(bits_per_byte,)] = duckdb.sql("SELECT 8.0 * sum(payload_bytes) / sum(bytes) FROM latents").fetchall()
    print(f"text: {bits_per_byte:.3f} bits per byte, byte-exact")
    assert 0 < bits_per_byte < 3.5, bits_per_byte  # the zoo model (or zstd with the dictionary) codes it
    assert 0.0 <= tables.totals(tmp_path / "out")["quality"]["model_used"] <= 1.0  # the share of pieces the model coded

    report = json.loads((tmp_path / "out/_aec/report.json").read_text())
    rd = report["rate_distortion"]
    assert rd["rate_unit"] == "bits_per_byte" and {"gzip -9", "xz -9"} <= set(rd["classic"])
    assert (tmp_path / "out/_aec/report.png").stat().st_size > 10_000
