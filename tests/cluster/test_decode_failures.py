"""Restoring survives bad rows, refuses bombs, and reaches nowhere a dataset points it to."""

from __future__ import annotations

import http.server
import struct
import threading

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.registry import ModelRegistry
from tests import tables
from tests.cluster.helpers import build_dataset, tiny_bundle, write_photos


def _row(good: dict, **changes) -> dict:
    return {**good, **changes}


@pytest.fixture
def damaged(tmp_path):
    """4 good rows, and rows with a truncated payload, garbage, and a header claiming 4000x4000
    (the row says 16x16x3: a 16-byte 'decompression bomb'), registered like a real model."""
    bundle = tiny_bundle()
    registry = ModelRegistry(str(tmp_path / "reg"))
    registry.register("tiny", bundle, {})
    write_photos(tmp_path / "in", 4)
    good = build_dataset(tmp_path / "in", tmp_path / "probe", bundle)
    row = tables.dataset(good.path).dataset.to_table().to_pylist()[0]
    row.update(error=None, quality=None)
    bomb = bytes([3, 0]) + struct.pack("<IIBB", 4000, 4000, 3, 8) + b"\x01\x00\x00\x00" + b"\x00" * 16
    extra = [
        _row(row, id="t" * 32, key="truncated.png", payload=row["payload"][: len(row["payload"]) // 2]),
        _row(row, id="g" * 32, key="garbage.png", payload=b"\x03\x00" + b"\xff" * 40),
        _row(row, id="b" * 32, key="bomb.png", payload=bomb, shape=[16, 16, 3]),
        _row(row, id="v" * 32, key="version.png", payload=b"\x09\x00"),
    ]
    out = build_dataset(tmp_path / "in", tmp_path / "ds", bundle, extra, metadata={"registry": str(tmp_path / "reg"),
                                                                                    "model_ref": "tiny@1"})
    return {"out": out.path, "root": tmp_path}


def test_bad_rows_are_reported_and_the_rest_restored(damaged):
    root = damaged["root"]
    result = CliRunner().invoke(app, ["decode", "--workers", "0", damaged["out"], "--out", str(root / "restored"),
                                      "--originals", str(root / "in")])
    assert result.exit_code == 1, result.output
    assert len(list((root / "restored").iterdir())) == 4  # every good row, though bad ones came first or last
    assert "4 of 8 rows could not be restored" in result.output
    assert "claims 48,000,000 values" not in result.output  # the bomb is refused by its row's shape first
    assert "header says shape [4000, 4000, 3], the row says [16, 16, 3]" in result.output
    assert "payload version 9" in result.output
    assert "compared with originals │ 4" in result.output


@pytest.mark.parametrize("key", ["truncated.png", "garbage.png", "bomb.png", "version.png"])
def test_a_corrupt_row_to_standard_output_is_one_line(damaged, key):
    """Issue 27 item 19: `--key K --out -` on a corrupt row says why in one line, writes nothing."""
    result = CliRunner().invoke(app, ["decode", damaged["out"], "--key", key, "--out", "-"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "cannot be restored" in result.stderr and "the dataset is damaged there" in result.stderr
    assert result.stdout_bytes == b"" and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_bomb_with_a_matching_shape_is_bounded_by_the_modality(tmp_path):
    from aecore import load_bundle
    from aecore.payload import PayloadError

    comp = load_bundle(tiny_bundle())
    bomb = bytes([3, 0]) + struct.pack("<IIBB", 60000, 60000, 3, 8) + b"\x01\x00\x00\x00"
    with pytest.raises(PayloadError, match="over the image limit"):
        comp.decode(bomb, [60000, 60000, 3])


def test_a_dataset_whose_every_input_failed_is_inspected_and_decoded(tmp_path):
    from cluster.commit import DatasetCommitter
    from cluster.compress import _error_descriptor
    from cluster.storage import Location

    registry = ModelRegistry(str(tmp_path / "reg"))
    registry.register("tiny", tiny_bundle(), {})
    from aecore import load_bundle
    from cluster.compress import dataset_metadata
    from cluster.schema import latent_schema

    meta = {**dataset_metadata(load_bundle(tiny_bundle()), "tiny", 1, Location.of(str(tmp_path / "in")), None),
            "registry": str(tmp_path / "reg")}
    committer = DatasetCommitter(Location.of(str(tmp_path / "ds")), meta, latent_schema(meta), run_id="r")
    committer.open()
    committer.commit([_error_descriptor([{"uri": "x.png", "sha256": None, "bytes": 3, "stage": "decode",
                                          "reason": "not a readable image"}])])
    committer.finish("completed")
    inspect = CliRunner().invoke(app, ["inspect", str(tmp_path / "ds")])
    assert inspect.exit_code == 0 and "errors" in inspect.output, inspect.output
    decode = CliRunner().invoke(app, ["decode", "--workers", "0", str(tmp_path / "ds"), "--out", str(tmp_path / "r")])
    assert decode.exit_code == 0 and "rows restored │ 0" in decode.output, decode.output


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802
        _Counter.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args):  # noqa: ANN002
        pass


def test_decode_never_fetches_a_url_the_dataset_names(damaged, tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/latest/meta-data/iam/security-credentials/"
    # A dataset whose metadata (the table's properties) names a hostile registry.
    build_dataset(damaged["root"] / "in", tmp_path / "hostile", tiny_bundle(), metadata={"registry": url})
    monkeypatch.chdir(tmp_path)  # the default registry (.aec/registry) is empty here
    result = CliRunner().invoke(app, ["decode", "--workers", "0", str(tmp_path / "hostile"), "--out", str(tmp_path / "r")])
    server.shutdown()
    assert result.exit_code == 2 and "not in the registry" in result.output, result.output
    assert _Counter.hits == []


def test_originals_are_read_only_under_the_given_root_and_capped(tmp_path):
    from cluster.decode import _read_original
    from cluster.storage import Location

    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "a.png").write_bytes(b"12345")
    (tmp_path / "secret").write_bytes(b"x")
    (tmp_path / "root" / "link.png").symlink_to(tmp_path / "secret")
    root = Location.of(str(tmp_path / "root"))
    assert _read_original(root, "a.png", 5) == b"12345"
    assert _read_original(root, "a.png", 4) is None  # larger than the row says: not read whole
    for key in ("../secret", "/etc/passwd", "link.png", "a/../../secret", "/dev/zero"):
        assert _read_original(root, key, 10) is None


def test_decode_with_other_weights_under_the_same_name_is_refused(damaged, tmp_path):
    import torch

    from aecore import build_model, dump_bundle

    torch.manual_seed(7)  # other weights, registered as tiny@1 in another registry
    other = ModelRegistry(str(tmp_path / "reg2"))
    other.register("tiny", dump_bundle(build_model("image-conv", "tiny").uniform_prior(), "image-conv", "image"), {})
    result = CliRunner().invoke(app, ["decode", "--workers", "0", damaged["out"], "--out", str(tmp_path / "r2"),
                                      "--registry", str(tmp_path / "reg2")])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "is not the bundle" in result.output and "pass --registry with the registry that encoded it" in result.output
    assert not (tmp_path / "r2").exists() or not any((tmp_path / "r2").iterdir())
