"""The commit protocol on local files, with no Ray: what a re-run finds committed, what a dead
driver's moved-in parts become, what a retried batch that overlaps committed rows adds."""

from __future__ import annotations

import io
import json
import posixpath

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.commit import MANIFEST, DatasetCommitter
from cluster.stage import describe_part, part_name
from cluster.storage import Location, StorageError

META = {"model_ref": "m@1", "bundle_sha256": "ab" * 32}


def _committer(out, run_id: str = "run-1", **meta) -> DatasetCommitter:
    c = DatasetCommitter(Location.of(str(out)), {**META, **meta}, run_id)
    c.open()
    return c


def _stage(c: DatasetCommitter, ids: list[str], errors: list[dict] | None = None) -> dict:
    """A part as a write task stages it, and its descriptor (no part: a batch of errors only)."""
    if not ids:
        return {"file": None, "rows": 0, "size": 0, "sha256": None, "input_bytes": 0, "payload_bytes": 0, "ids": [],
                "uris": [], "errors": json.dumps(errors or []), "quality": "[]"}
    table = pa.table({"id": ids, "uri": [f"file:///in/{i}.png" for i in ids], "bytes": [100] * len(ids),
                      "payload": [b"xy"] * len(ids)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    name = part_name(ids)
    fs = c.staging.fs
    fs.makedirs(c.staging.path, exist_ok=True)
    fs.pipe_file(posixpath.join(c.staging.path, name), buf.getvalue())
    return {**describe_part(name, table, buf.getvalue()), "errors": json.dumps(errors or []), "quality": "[]"}


def _rows(out) -> list[str]:
    return sorted(pq.ParquetDataset(str(out)).read(columns=["id"]).column("id").to_pylist())


def test_commits_are_what_a_rerun_finds_and_error_rows_are_kept_until_an_input_succeeds(tmp_path):
    out = tmp_path / "latents"
    c = _committer(out)
    c.commit([_stage(c, ["a", "b"]), _stage(c, [], errors=[{"uri": "file:///in/c.png", "reason": "bad"}])])
    c.commit([_stage(c, ["d"])])
    summary = c.finish("succeeded")
    assert summary["rows"] == 3 and summary["errors"] == 1 and _rows(out) == ["a", "b", "d"]
    again = _committer(out, "run-2")
    assert again.committed_uris == {"file:///in/a.png", "file:///in/b.png", "file:///in/d.png"}
    again.commit([_stage(again, ["c"])])  # the bad input fixed and encoded on the re-run
    assert again.finish("succeeded")["errors"] == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["rows"] == 4 and [r["status"] for r in manifest["runs"]] == ["succeeded", "succeeded"]


def test_parts_a_dead_driver_moved_in_are_adopted_once_and_broken_ones_removed(tmp_path):
    out = tmp_path / "latents"
    c = _committer(out)
    c.commit([_stage(c, ["a"])])
    # the driver moved two parts in and died before writing the manifest; a third is truncated
    for ids in (["b", "c"], ["d"]):
        d = _stage(c, ids)
        c.output.fs.mv(posixpath.join(c.staging.path, d["file"]), str(out / d["file"]))
    (out / part_name(["e"])).write_bytes(b"PAR1 truncated")
    again = _committer(out, "run-2")
    assert again.manifest["rows"] == 4 and "file:///in/d.png" in again.committed_uris
    assert not (out / part_name(["e"])).exists()
    assert _rows(out) == ["a", "b", "c", "d"]


def test_a_retried_batch_overlapping_committed_rows_adds_only_the_new_ones(tmp_path):
    out = tmp_path / "latents"
    c = _committer(out)
    c.commit([_stage(c, ["a", "b"])])
    c.commit([_stage(c, ["b", "c"])])  # an actor died after its batch was committed; the retry regrouped
    assert c.finish("succeeded")["rows"] == 3 and _rows(out) == ["a", "b", "c"]


def test_an_output_of_another_model_or_other_weights_is_refused(tmp_path):
    out = tmp_path / "latents"
    c = _committer(out)
    c.commit([_stage(c, ["a"])])
    c.finish("succeeded")
    with pytest.raises(StorageError, match="holds a dataset of model m@1, not m@2"):
        _committer(out, model_ref="m@2")
    with pytest.raises(StorageError, match="other weights of m@1"):
        _committer(out, bundle_sha256="cd" * 32)
