"""A compress job on Ray over inputs that used to fail every run: a name that is not UTF-8, a
dangling link, a FIFO, a link out of the collection, a file that vanished after listing. Each
becomes an error row; the job completes, and so does its re-run."""

from __future__ import annotations

import os
import shutil

import pytest

from tests import tables
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_a_hostile_collection_completes_and_so_does_its_rerun(trained, photos, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for p in sorted(photos.iterdir())[:6]:
        shutil.copy(p, root / p.name)
    first = sorted(root.iterdir())[0]
    with open(os.path.join(os.fsencode(root), b"caf\xe9.png"), "wb") as f:  # Latin-1 name
        f.write(first.read_bytes())
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "escape.png").symlink_to("/etc/hostname")
    os.mkfifo(root / "fifo.png")
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: hostile\nmodality: image\ninput: {root}\noutput: {tmp_path}/out\n"
                    f"registry: {trained['registry']}\nmodel: photos@1\nbatch_size: 4\nworkers: 2\n")
    out = run_cli("compress", str(spec))
    assert "completed with 4 errors" in out, out
    errors = {e["uri"].rsplit("/", 1)[-1]: e for e in tables.errors(tmp_path / "out")}
    assert errors["caf\\xe9.png"]["reason"] == "file name is not valid UTF-8; rename it"
    assert errors["dangling.png"]["reason"] == "dangling symbolic link"
    assert "leaves the input root" in errors["escape.png"]["reason"]
    assert errors["fifo.png"]["reason"].startswith("not a regular file (FIFO)")
    again = run_cli("compress", str(spec))
    assert "completed" in again and "skipped (already committed) │ 6" in again, again

    # The whole archive (modality auto) keeps links as links: only the FIFO and the name are errors.
    archive = tmp_path / "archive.yaml"
    archive.write_text(f"kind: compress\nname: hostile-archive\ninput: {root}\noutput: {tmp_path}/archive\n"
                       f"registry: {trained['registry']}\nbatch_size: 4\nworkers: 2\n")
    out = run_cli("compress", str(archive))
    assert "completed with 2 errors" in out, out
    assert {e["uri"].rsplit("/", 1)[-1] for e in tables.errors(tmp_path / "archive")} == {"caf\\xe9.png", "fifo.png"}
    links = tables.dataset(tmp_path / "archive").dataset.to_table(columns=["key", "entry", "link"]).to_pylist()
    assert {r["key"]: r["link"] for r in links if r["entry"] == "symlink"} == {
        "dangling.png": str(tmp_path / "gone.png"), "escape.png": "/etc/hostname"}


def test_a_file_that_vanished_after_listing_is_an_error_row(trained, photos, tmp_path, ray_local):
    from aecore import read_bundle  # noqa: F401 - the session's model
    from cluster.compress import compress_collection
    from cluster.storage import InputFile, Location, list_collection
    from jobs.registry import ModelRegistry
    from jobs.run import compress_request
    from jobs.spec import parse_spec

    root = tmp_path / "photos"
    shutil.copytree(photos, root)
    listing = list_collection(Location.of(str(root)), (".png", ".jpg"))[:5]
    os.unlink(listing[2].path)  # gone between the listing and the read
    mv, bundle = ModelRegistry(str(trained["registry"])).load("photos@1")
    job = parse_spec({"kind": "compress", "name": "gone", "input": str(root), "output": str(tmp_path / "out"),
                      "registry": str(trained["registry"]), "model": "photos@1", "workers": 1, "batch_size": 2})
    summary = compress_collection(compress_request(job, bundle, mv.name, mv.version, files=tuple(listing)))
    assert summary["rows"] == 4 and summary["errors"] == 1
    errors = tables.errors(tmp_path / "out")
    assert errors[0]["uri"] == listing[2].path and errors[0]["reason"] == "vanished after listing"
    assert isinstance(listing[0], InputFile)
