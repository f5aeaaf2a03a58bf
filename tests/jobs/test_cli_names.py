"""File names print as they are (issue 27, item 17): a uri with rich markup in it is text, never style."""

from __future__ import annotations

from typer.testing import CliRunner

from cluster.commit import DatasetCommitter
from cluster.compress import _error_descriptor, dataset_metadata
from cluster.schema import latent_schema
from cluster.storage import Location
from jobs.cli import app
from tests.cluster.helpers import tiny_bundle


def test_markup_in_a_name_is_printed_literally(tmp_path):
    from aecore import load_bundle

    meta = dataset_metadata(load_bundle(tiny_bundle()), "tiny", 1, Location.of(str(tmp_path / "in")), None)
    committer = DatasetCommitter(Location.of(str(tmp_path / "ds")), meta, latent_schema(meta), run_id="r")
    committer.open()
    names = ["file:///in/a[/x].png", "file:///in/[red]x.png"]
    committer.commit([_error_descriptor([{"uri": u, "sha256": None, "bytes": 3, "stage": "decode",
                                          "reason": "not [bold]readable"} for u in names])])
    committer.finish("completed")
    result = CliRunner().invoke(app, ["inspect", str(tmp_path / "ds"), "--errors"], terminal_width=200)
    assert result.exit_code == 0, result.output + repr(result.exception)
    for text in ("a[/x].png", "[red]x.png", "not [bold]readable"):
        assert text in result.output
