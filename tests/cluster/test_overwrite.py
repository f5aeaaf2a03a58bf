"""An output never nests with its input; --overwrite of a folder holding the input deletes nothing.
(Overwrite as a Delta commit, and the refusals of foreign folders: tests/cluster/test_commit.py.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cluster.compress import check_locations
from cluster.storage import Location, StorageError
from jobs.cli import app


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


def test_an_output_at_a_bucket_root_is_refused_in_one_line():
    with pytest.raises(StorageError, match=r"is a bucket root; write the dataset under a prefix, e.g. s3://bucket/latents"):
        check_locations(Location.of("s3://bucket/photos"), Location.of("s3://bucket"))


def test_worker_ports_avoid_the_heads_ports():
    from cluster.head import worker_port_range

    assert worker_port_range((6379, 8265)) == (10002, 19999)  # Ray's default when nothing collides
    low, high = worker_port_range((16379, 18265, 41000))
    assert not any(low <= p <= high for p in (16379, 18265, 41000))
