import pytest

from cluster.decode import safe_name


@pytest.mark.parametrize("uri", [
    "../../etc/passwd", "s3://b/../../x.png", "/abs/path/..", "C:\\\\evil\\\\x.png", "a/b/\x00nul.png",
    "s3://bucket/dir/", "", "....", "~/.ssh/id_rsa",
])
def test_names_never_escape_the_folder(uri):
    name = safe_name("abc123", uri, ".png")
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    assert name.startswith("abc123") and name.endswith(".png")


def test_names_keep_a_readable_stem():
    assert safe_name("id", "s3://b/photos/cat 01.jpg", ".png") == "id-cat_01.png"
