"""The commit protocol on local files, with no Ray: what a re-run finds committed, what two
writers committing the same inputs end with, what a retried batch that overlaps committed rows
adds, what a commit whose answer was lost becomes."""

from __future__ import annotations

import json
import threading

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from cluster.commit import DatasetCommitter
from cluster.dataset import open_dataset
from cluster.schema import latent_schema
from cluster.stage import describe_part, part_name, write_part
from cluster.storage import Location, StorageError

META = {"model_ref": "m@1", "bundle_sha256": "ab" * 32, "latent_shape": [2]}


def _committer(out, run_id: str = "run1", **meta) -> DatasetCommitter:
    full = {**META, **meta}
    c = DatasetCommitter(Location.of(str(out)), full, latent_schema(full), run_id)
    return c


def _open(out, run_id: str = "run1", overwrite: bool = False, **meta) -> DatasetCommitter:
    c = _committer(out, run_id, **meta)
    c.open(overwrite=overwrite)
    return c


def _stage(c: DatasetCommitter, ids: list[str], errors: list[dict] | None = None) -> dict:
    """A part as a write task writes it under the table, and its descriptor (none: errors only)."""
    if not ids:
        return {"file": None, "rows": 0, "size": 0, "stats": "{}", "input_bytes": 0, "payload_bytes": 0, "ids": [],
                "uris": [], "errors": json.dumps(errors or [])}
    n = len(ids)
    table = pa.table({"id": ids, "uri": [f"file:///in/{i}.png" for i in ids], "key": [f"{i}.png" for i in ids],
                      "sha256": ["0" * 64] * n, "modality": ["image"] * n, "model": ["m"] * n,
                      "model_version": [1] * n, "codec": ["aec-image"] * n, "bytes": [100] * n, "shape": [[2, 2, 3]] * n,
                      "payload": [b"xy"] * n, "payload_bytes": [2] * n, "latent": [[0.0, 1.0]] * n,
                      "quality": [json.dumps({"psnr": 30.0})] * n, "entry": ["file"] * n,
                      "link": pa.nulls(n, pa.string()), "mode": pa.nulls(n, pa.int32()),
                      "mtime_ns": pa.nulls(n, pa.int64()), "solid": pa.nulls(n, pa.string()),
                      "offset": pa.nulls(n, pa.int64())}).cast(c.schema)
    name = part_name(c.run_id, ids)
    return {**describe_part(name, table, write_part(c.output, name, table)), "errors": json.dumps(errors or [])}


def _ids(out) -> list[str]:
    return sorted(DeltaTable(str(out)).to_pyarrow_table(columns=["id"]).column("id").to_pylist())


def test_commits_are_what_a_rerun_finds_and_errors_stay_until_the_input_succeeds(tmp_path):
    out = tmp_path / "latents"
    c = _open(out)
    c.commit([_stage(c, ["a", "b"]), _stage(c, [], errors=[{"uri": "file:///in/c.png", "reason": "bad"}])])
    c.commit([_stage(c, ["d"])])
    assert c.rows == 3  # what it committed itself counts, without reading its parts back
    summary = c.finish("completed")
    assert summary["rows"] == 3 and summary["errors"] == 1 and _ids(out) == ["a", "b", "d"]
    assert summary["quality"] == {"psnr": 30.0} and summary["input_bytes"] == 300 and summary["payload_bytes"] == 6
    again = _open(out, "run2")
    assert again.committed([f"file:///in/{i}.png" for i in "abcd"]) == [True, True, False, True]
    again.commit([_stage(again, ["c"])])  # the bad input fixed and encoded on the re-run
    assert again.finish("completed")["errors"] == 0
    ds = open_dataset(Location.of(str(out)))
    assert ds.count_rows() == 4 and [r["status"] for r in ds.runs()] == ["completed", "completed"]
    # every commit is a version: the first run's rows are still readable as they were
    first = open_dataset(Location.of(str(out)), version=ds.runs()[0]["versions"][-1])
    assert first.count_rows() == 3


def test_a_part_overlapping_committed_rows_adds_only_its_new_rows(tmp_path):
    out = tmp_path / "latents"
    c = _open(out)
    c.commit([_stage(c, ["a", "b"])])
    assert c.commit([_stage(c, ["b", "c"]), _stage(c, ["c", "d"])]) == 2  # a retried task, a duplicate batch
    assert _ids(out) == ["a", "b", "c", "d"]


def test_two_writers_committing_the_same_inputs_end_with_each_once(tmp_path):
    """Two jobs that both saw an empty table and encoded the same inputs."""
    out = tmp_path / "latents"
    a, b = _open(out, "runa"), _open(out, "runb")
    groups = [[f"x{g}-{i}" for i in range(3)] for g in range(8)]

    def job(c: DatasetCommitter) -> None:
        for ids in groups:
            c.commit([_stage(c, ids)])

    threads = [threading.Thread(target=job, args=(c,)) for c in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = _ids(out)
    assert len(ids) == len(set(ids)) == 24
    assert a.run["rows"] + b.run["rows"] == 24


def test_a_commit_whose_answer_was_lost_is_not_repeated(tmp_path, monkeypatch):
    out = tmp_path / "latents"
    c = _open(out)
    real = DeltaTable.create_write_transaction
    calls = []

    def lost_answer(self, *args, **kwargs):  # the commit lands, then the connection drops
        real(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise OSError("Connection reset by peer")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", lost_answer)
    monkeypatch.setattr("cluster.commit.time.sleep", lambda s: None)
    c.commit([_stage(c, ["a", "b"])])
    assert _ids(out) == ["a", "b"] and len(calls) == 1


def test_other_weights_another_model_or_a_foreign_folder_are_refused(tmp_path):
    out = tmp_path / "ds"
    _open(out).finish("completed")
    with pytest.raises(StorageError, match="encoded with other weights of m@1"):
        _open(out, "run2", bundle_sha256="cd" * 32)
    with pytest.raises(StorageError, match="holds a dataset of model m@1, not n@1"):
        _open(out, "run3", model_ref="n@1")
    _open(out, "run4")  # the same weights append
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(StorageError, match="holds files but no aec dataset"):
        _open(mine)
    assert (mine / "notes.txt").read_text() == "mine"
    write_deltalake(str(tmp_path / "theirs"), pa.table({"x": [1]}))
    with pytest.raises(StorageError, match="a Delta table aec did not write"):
        _open(tmp_path / "theirs")


def test_overwrite_replaces_the_rows_in_one_commit_and_keeps_the_old_version(tmp_path):
    out = tmp_path / "ds"
    c = _open(out)
    c.commit([_stage(c, ["a"]), _stage(c, [], errors=[{"uri": "file:///in/z.png", "reason": "bad"}])])
    c.finish("completed")
    old = open_dataset(Location.of(str(out))).version
    c = _open(out, "run2", overwrite=True, model_ref="n@1", bundle_sha256="cd" * 32)
    c.commit([_stage(c, ["b"])])
    summary = c.finish("completed")
    assert _ids(out) == ["b"] and summary["errors"] == 0
    ds = open_dataset(Location.of(str(out)))
    assert ds.metadata["model_ref"] == "n@1"
    assert open_dataset(Location.of(str(out)), version=old).dataset.to_table().column("id").to_pylist() == ["a"]


def test_a_table_left_without_properties_by_a_killed_job_is_finished_by_the_next(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    c = _committer(out)
    monkeypatch.setattr("deltalake.table.TableAlterer.set_table_properties",
                        lambda *a, **k: (_ for _ in ()).throw(SystemExit("killed")))
    with pytest.raises(SystemExit):
        c.open()
    monkeypatch.undo()
    _open(out, "run2").finish("completed")
    assert open_dataset(Location.of(str(out))).metadata["model_ref"] == "m@1"


def test_optimize_keeps_the_rows_and_vacuum_removes_only_old_unreferenced_files(tmp_path):
    import os
    import time

    from cluster.maintain import optimize, vacuum

    out = tmp_path / "ds"
    c = _open(out)
    c.commit([_stage(c, ["a"]), _stage(c, [], errors=[{"uri": "file:///in/z.png", "reason": "bad"}])])
    c.commit([_stage(c, ["b"])])
    c.finish("completed")
    orphan = _stage(c, ["zz"])["file"]  # a killed job's part: written, never committed
    (out / "_aec").mkdir(exist_ok=True)
    (out / "_aec" / "report.json").write_text("{}")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(out / orphan, (week_ago, week_ago))
    loc = Location.of(str(out))
    assert optimize(loc)["rows"]["parts removed"] == 2 and _ids(out) == ["a", "b"]
    with pytest.raises(StorageError, match="retention 1 h is below 168 h"):
        vacuum(loc, retention_hours=1)
    assert vacuum(loc) == [orphan]  # the parts optimize replaced are newer than the retention
    vacuum(loc, dry_run=False)
    assert not (out / orphan).exists() and (out / "_aec" / "report.json").exists()
    assert _ids(out) == ["a", "b"] and len(open_dataset(loc).errors()) == 1


@pytest.mark.parametrize("setting, first, then", [("lossless", True, False), ("rate_point", 3.0, 1.0)])
def test_an_append_with_another_decode_setting_is_refused(tmp_path, setting, first, then):
    """Issue 27, item 1: a lossless table must not take lossy rows (or rows of another rate point)."""
    out = tmp_path / "latents"
    c = _open(out, **{setting: first})
    c.commit([_stage(c, ["a"])])
    c.finish("completed")
    with pytest.raises(StorageError, match=f"written with {setting}=.*this job has {setting}="):
        _open(out, "run2", **{setting: then})
    again = _open(out, "run3", **{setting: first})  # the same settings append as before
    again.commit([_stage(again, ["b"])])
    assert _ids(out) == ["a", "b"]


def test_a_job_that_looked_while_another_created_the_table_joins_it(tmp_path, monkeypatch):
    """Two drivers started together on S3: one's snapshot is the other's bare create (version 0),
    but the history it reads next already ends in the properties commit. That job looks again
    and joins the table, where it stopped with "a Delta table aec did not write"."""
    import cluster.commit as commit

    out = tmp_path / "ds"
    _open(out, "first")  # create (v0), then its properties (v1)
    calls = []
    real = commit.load_table

    def stale_first(loc):
        calls.append(1)
        return DeltaTable(str(out), version=0) if len(calls) == 1 else real(loc)

    monkeypatch.setattr(commit, "load_table", stale_first)
    second = _open(out, "second")
    assert len(calls) == 2 and second.version == 1


def test_simultaneous_first_error_appends_all_land(tmp_path):
    """Issue 27, item 5: jobs whose first error rows create the errors table at once all commit them."""
    out = tmp_path / "latents"
    committers = [_open(out, f"run{i}") for i in range(6)]
    barrier = threading.Barrier(len(committers))
    failures: list[BaseException] = []

    def first_errors(c: DatasetCommitter, i: int) -> None:
        barrier.wait()
        try:
            c.commit([_stage(c, [], errors=[{"uri": f"file:///in/bad{i}.png", "reason": "bad"}])])
        except BaseException as exc:  # noqa: BLE001 - collected, asserted below
            failures.append(exc)

    threads = [threading.Thread(target=first_errors, args=(c, i)) for i, c in enumerate(committers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    uris = DeltaTable(str(out / "_aec" / "errors")).to_pyarrow_table(columns=["uri"]).column("uri").to_pylist()
    assert sorted(uris) == [f"file:///in/bad{i}.png" for i in range(6)]


def test_vacuum_keeps_users_files_and_refuses_foreign_tables(tmp_path):
    """Issue 27, item 2: only parts aec staged (or the log removed) may go; users' files stay, and a
    Delta table aec did not write is refused."""
    import os
    import time

    from cluster.maintain import vacuum

    out = tmp_path / "ds"
    c = _open(out)
    c.commit([_stage(c, ["a"])])
    c.finish("completed")
    week_ago = time.time() - 8 * 24 * 3600
    (out / "photos").mkdir()
    for user_file in (out / "notes.txt", out / "photos" / "p0.png", out / "my-part.parquet"):
        user_file.write_bytes(b"mine")
        os.utime(user_file, (week_ago, week_ago))
    vacuum(Location.of(str(out)), dry_run=False)
    assert all(p.read_bytes() == b"mine" for p in (out / "notes.txt", out / "photos" / "p0.png", out / "my-part.parquet"))
    assert _ids(out) == ["a"]
    foreign = tmp_path / "foreign"
    write_deltalake(str(foreign), pa.table({"x": [1]}))
    with pytest.raises(StorageError, match="aec did not write"):
        vacuum(Location.of(str(foreign)), dry_run=False)
