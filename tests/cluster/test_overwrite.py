"""--overwrite removes an aec dataset and nothing else; an output never nests with its input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cluster.commit import MANIFEST, DatasetCommitter, remove_dataset
from cluster.compress import check_locations
from cluster.storage import Location, StorageError
from jobs.cli import app


def _dataset(root, parts=("part-a.parquet", "part-b.parquet")):
    (root / "_aec").mkdir(parents=True)
    (root / MANIFEST).write_text(json.dumps({"files": [{"name": p} for p in parts[:1]]}))
    for p in parts:
        (root / p).write_bytes(b"x")


def test_overwrite_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    victim = tmp_path / "victim"
    (victim / "photos").mkdir(parents=True)
    (victim / "photos" / "a.png").write_bytes(b"precious")
    (victim / "notes.txt").write_text("mine")
    with pytest.raises(StorageError, match="holds files but no aec dataset"):
        remove_dataset(Location.of(str(victim)))
    assert (victim / "photos" / "a.png").read_bytes() == b"precious" and (victim / "notes.txt").exists()


def test_overwrite_removes_the_dataset_and_leaves_what_else_is_there(tmp_path):
    out = tmp_path / "out"
    _dataset(out)  # part-b is a stray part of a crashed run: also the dataset's
    (out / "README.txt").write_text("a user's file beside the dataset")
    assert remove_dataset(Location.of(str(out))) == 2
    assert sorted(p.name for p in out.iterdir()) == ["README.txt"]
    assert remove_dataset(Location.of(str(tmp_path / "absent"))) == 0


@pytest.mark.parametrize("output,relation", [("victim", "contains"), ("victim/photos", "is"),
                                             ("victim/photos/out", "is inside"), ("link", "contains")])
def test_an_output_nesting_with_its_input_is_refused(tmp_path, output, relation):
    (tmp_path / "victim" / "photos").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "victim")
    with pytest.raises(StorageError, match=f"{relation} the input"):
        check_locations(Location.of(str(tmp_path / "victim" / "photos")), Location.of(str(tmp_path / output)))
    check_locations(Location.of(str(tmp_path / "victim" / "photos")), Location.of(str(tmp_path / "elsewhere")))
    check_locations(Location.of(str(tmp_path / "victim" / "photos")), Location.of(str(tmp_path / "victim" / "photos2")))


def test_compress_overwrite_into_the_inputs_parent_deletes_nothing(tmp_path, photos):
    """The reported case: input victim/photos, output victim, --overwrite. Refused before any work."""
    import shutil

    victim = tmp_path / "victim"
    shutil.copytree(photos, victim / "photos")
    (victim / "other.txt").write_text("keep me")
    before = sorted(p.relative_to(victim) for p in victim.rglob("*"))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: c\ninput: {victim / 'photos'}\noutput: {victim}\n"
                    f"registry: {tmp_path / 'reg'}\nmodel: zoo:image-small\n")
    result = CliRunner().invoke(app, ["compress", str(spec), "--overwrite"])
    assert result.exit_code == 2, result.output
    assert "contains the input" in result.output and len(result.output.strip().splitlines()) == 1
    assert sorted(p.relative_to(victim) for p in victim.rglob("*")) == before


def test_an_append_with_other_weights_under_the_same_name_is_refused(tmp_path):
    out = Location.of(str(tmp_path / "ds"))
    meta = {"model_ref": "photos@1", "bundle_sha256": "a" * 64}
    first = DatasetCommitter(out, meta, run_id="r1")
    first.open()
    first.finish("completed")
    again = DatasetCommitter(out, {**meta, "bundle_sha256": "b" * 64}, run_id="r2")
    with pytest.raises(StorageError, match="encoded with other weights of photos@1"):
        again.open()
    DatasetCommitter(out, meta, run_id="r3").open()  # the same weights append


def test_an_output_at_a_bucket_root_is_refused_in_one_line():
    with pytest.raises(StorageError, match=r"is a bucket root; write the dataset under a prefix, e.g. s3://bucket/latents"):
        check_locations(Location.of("s3://bucket/photos"), Location.of("s3://bucket"))


def test_worker_ports_avoid_the_heads_ports():
    from cluster.head import worker_port_range

    assert worker_port_range((6379, 8265)) == (10002, 19999)  # Ray's default when nothing collides
    low, high = worker_port_range((16379, 18265, 41000))
    assert not any(low <= p <= high for p in (16379, 18265, 41000))
