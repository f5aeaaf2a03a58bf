"""Where a row is restored: at its key, never outside the output folder."""

import pytest

from cluster.decode import _write, restore_path


@pytest.mark.parametrize("key", [
    "../../etc/passwd", "/abs/path.png", "a/../../x.png", "C:\\evil\\x.png", "a/b/\x00nul.png",
    "dir/", "", "./x.png", "a//b.png", "..",
])
def test_keys_that_leave_the_collection_get_no_path(key):
    assert restore_path(key, lossless=True, output_suffix=".png") is None


def test_lossless_rows_keep_their_key_and_lossy_ones_gain_the_output_suffix_where_it_differs():
    assert restore_path("a/b/cat 01.jpg", lossless=True, output_suffix=".png") == "a/b/cat 01.jpg"
    assert restore_path("a/b/cat 01.jpg", lossless=False, output_suffix=".png") == "a/b/cat 01.jpg.png"
    assert restore_path("a/b/cat.PNG", lossless=False, output_suffix=".png") == "a/b/cat.PNG"


def test_a_link_out_of_the_folder_is_not_followed(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "sub").symlink_to(outside)
    with pytest.raises(ValueError, match="resolves outside"):
        _write(out.resolve(), "sub/x.png", b"data", set())
    assert not list(outside.iterdir())
    written: set[str] = set()
    _write(out.resolve(), "a/b/x.png", b"data", written)
    assert (out / "a/b/x.png").read_bytes() == b"data"
    with pytest.raises(ValueError, match="already restored"):
        _write(out.resolve(), "a/b/x.png", b"other", written)


def test_a_write_that_fails_midway_leaves_no_file_at_the_key(tmp_path, monkeypatch):
    """Issue 27, item 6: a full disk during a restore leaves neither a truncated file nor a temporary one."""
    import errno
    import os

    out = tmp_path / "out"
    out.mkdir()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        _write(out.resolve(), "a/x.png", b"data" * 1000, set())
    assert [p for p in out.rglob("*") if p.is_file()] == []
