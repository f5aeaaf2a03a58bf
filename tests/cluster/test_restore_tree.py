"""`aec decode` gives the archive back as it was: each file at its key, subfolders included,
only the rows a --where condition selects, and nothing outside --out whatever a key says."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.registry import ModelRegistry
from tests import tables
from tests.cluster.helpers import build_dataset, tiny_bundle, write_photos

TREE = ["a/p0.png", "a/b/p1.png", "c/p2.png", "p3.png"]


@pytest.fixture
def tree(tmp_path):
    bundle = tiny_bundle()
    ModelRegistry(str(tmp_path / "reg")).register("tiny", bundle, {})
    for i, key in enumerate(TREE):
        [p] = write_photos(tmp_path / "tmp", 1, seed=i)
        (tmp_path / "in" / key).parent.mkdir(parents=True, exist_ok=True)
        p.rename(tmp_path / "in" / key)
    meta = {"registry": str(tmp_path / "reg"), "model_ref": "tiny@1"}
    good = build_dataset(tmp_path / "in", tmp_path / "probe", bundle, metadata=meta)
    row = tables.dataset(good.path).dataset.to_table().to_pylist()[0]
    row.update(error=None, quality=None)
    hostile = [{**row, "id": "e" * 32, "key": "../../escape.png"}, {**row, "id": "f" * 32, "key": "/tmp/abs.png"}]
    return {"root": tmp_path, "good": good.path, "hostile": build_dataset(tmp_path / "in", tmp_path / "h", bundle,
                                                                           hostile, metadata=meta).path}


def _restored(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_the_tree_is_restored_and_where_selects_a_subset(tree):
    root = tree["root"]
    result = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(root / "all")])
    assert result.exit_code == 0, result.output
    assert _restored(root / "all") == sorted(TREE)
    result = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(root / "some"),
                                      "--where", "key LIKE 'a/%'"])
    assert result.exit_code == 0, result.output
    assert _restored(root / "some") == ["a/b/p1.png", "a/p0.png"]
    bad = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(root / "x"), "--where", "kee = 1"])
    assert bad.exit_code == 2 and "--where" in bad.output and "Traceback" not in bad.output


def test_one_file_goes_to_standard_output(tree):
    one = CliRunner().invoke(app, ["decode", tree["good"], "--out", "-", "--key", "a/b/p1.png"])
    assert one.exit_code == 0, one.output
    CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(tree["root"] / "k"),
                             "--key", "a/b/p1.png"])
    assert _restored(tree["root"] / "k") == ["a/b/p1.png"]
    assert one.stdout_bytes == (tree["root"] / "k" / "a/b/p1.png").read_bytes()
    missing = CliRunner().invoke(app, ["decode", tree["good"], "--out", "-", "--key", "nope.png"])
    assert missing.exit_code == 2 and "0 rows have key 'nope.png'" in missing.output


def test_hostile_keys_are_error_rows_and_nothing_lands_outside_out(tree):
    root = tree["root"]
    result = CliRunner().invoke(app, ["decode", "--workers", "0", tree["hostile"], "--out", str(root / "deep/out")])
    assert result.exit_code == 1 and "2 of 6 rows could not be restored" in result.output, result.output
    assert _restored(root / "deep/out") == sorted(TREE)
    assert not (root / "escape.png").exists() and not (root / "deep/escape.png").exists()


def test_a_restore_never_overwrites_the_originals_or_an_existing_file(tree):
    """Issue 27, item 3: --out onto the collection is refused; existing files stay unless --overwrite."""
    root = tree["root"]
    before = {k: (root / "in" / k).read_bytes() for k in TREE}
    for target in (root / "in", root / "in" / "a"):
        onto = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(target)])
        assert onto.exit_code == 2 and "this dataset was made from" in onto.output, onto.output
    assert {k: (root / "in" / k).read_bytes() for k in TREE} == before
    (root / "again").mkdir()
    (root / "again" / "p3.png").write_bytes(b"mine")
    kept = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(root / "again")])
    assert kept.exit_code == 1 and "not overwritten" in kept.output
    assert (root / "again" / "p3.png").read_bytes() == b"mine"
    replaced = CliRunner().invoke(app, ["decode", "--workers", "0", tree["good"], "--out", str(root / "again"),
                                        "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert (root / "again" / "p3.png").read_bytes() != b"mine"


def test_a_retried_batch_counts_a_file_it_already_wrote_and_a_killed_write_leaves_nothing(tmp_path):
    """A restore actor lost with its node has its batch run again elsewhere: the files it had
    written hold the same bytes and count as restored; a file with other bytes is still refused;
    the temporary file of a write cut off mid-way is swept at the end."""
    from cluster.decode import _write, sweep_temporary

    _write(tmp_path, "a/x.bin", b"abc", set())
    assert _write(tmp_path, "a/x.bin", b"abc", set()).read_bytes() == b"abc"  # the retry: same bytes
    with pytest.raises(FileExistsError, match="not overwritten"):
        _write(tmp_path, "a/x.bin", b"abd", set())
    (tmp_path / "a" / ".y.bin.aec-0123abcd.tmp").write_bytes(b"half")
    (tmp_path / "a" / "keep.tmp").write_bytes(b"a user's file")
    assert sweep_temporary(tmp_path) == 1
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["keep.tmp", "x.bin"]
