"""aec.open: the rows a DuckDB or Polars query selected, decoded — without Ray."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

import aec
from jobs.registry import ModelRegistry
from tests.cluster.helpers import build_dataset, tiny_bundle, write_photos


@pytest.fixture
def archive(tmp_path):
    bundle = tiny_bundle()
    ModelRegistry(str(tmp_path / "reg")).register("tiny", bundle, {})
    write_photos(tmp_path / "in", 6)
    out = build_dataset(tmp_path / "in", tmp_path / "ds", bundle,
                        metadata={"registry": str(tmp_path / "reg"), "model_ref": "tiny@1"})
    return {"url": out.url, "root": tmp_path, "bundle": bundle}


def test_a_query_s_rows_are_decoded_in_order(archive):
    from aecore import load_bundle

    a = aec.open(archive["url"])
    latents = a.dataset  # noqa: F841 - DuckDB reads it by name
    chosen = duckdb.sql("SELECT id, key, shape, payload FROM latents WHERE key IN ('p1.png', 'p4.png') "
                        "ORDER BY key DESC")
    data = a.decode(chosen)
    compressor = load_bundle(archive["bundle"])
    table = chosen.arrow()
    table = table if hasattr(table, "column") else table.read_all()
    expected = [compressor.decode(p, s)[0] for p, s in zip(table["payload"].to_pylist(), table["shape"].to_pylist())]
    assert data == expected and len(data) == 2
    assert compressor.modality.load(data[0]).x.shape[-2:] == tuple(table["shape"].to_pylist()[0][:2])  # p4: 24x24

    # ids only (Polars without the payload column; a list of ids): the payloads are read from the archive
    ids = pl.scan_delta(archive["url"]).filter(pl.col("key").is_in(["p4.png", "p1.png"])).sort(
        "key", descending=True).select("id").collect()
    assert a.decode(ids) == expected and a.decode(ids["id"].to_list()) == expected
    with pytest.raises(KeyError, match="1 ids are not in"):
        a.decode(["0" * 32])


def test_an_archive_opens_at_a_version_and_reports_its_history(archive):
    a = aec.open(archive["url"])
    assert a.metadata["model_ref"] == "tiny@1" and a.dataset.count_rows() == 6
    assert [r["status"] for r in a.runs()] == ["completed"] and a.errors() == []
    assert aec.open(archive["url"], version=1).dataset.count_rows() == 0  # created, properties set, no rows yet
