"""An archive made with a zoo model restores (issue 27, item 0): the table records ``zoo:NAME@1``
and the decoder loads exactly what compress recorded, through the CLI and the Python API."""

from __future__ import annotations

import pytest

import aec
from aecore.zoo import ZOO, ZooError, zoo_entry
from jobs.models import load_model
from jobs.registry import ModelRegistry
from jobs.sample_data import make_audio_collection, make_photo_collection, make_text_collection
from tests import tables
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_every_zoo_reference_a_dataset_records_loads_again(tmp_path):
    registry = ModelRegistry(str(tmp_path))
    for name in ZOO:
        mv, bundle = load_model(f"zoo:{name}", registry)
        again, same = load_model(mv.ref, registry)  # what compress records: zoo:NAME@1
        assert again.ref == mv.ref == f"zoo:{name}@1" and same == bundle
    with pytest.raises(ZooError, match="version 7 is not in this installation"):
        zoo_entry("zoo:text-fast@7")


@pytest.mark.parametrize("zoo, maker", [
    ("image-small", lambda d: make_photo_collection(d, 4, sizes=(24, 32), seed=3, jpeg_every=0)),
    ("audio-small", lambda d: make_audio_collection(d, 3, seed=4)),
    ("text-fast", lambda d: make_text_collection(d, 4, max_bytes=2000)),
    ("text-cm", lambda d: make_text_collection(d, 4, max_bytes=2000)),
])
def test_zoo_archive_restores_byte_for_byte(ray_local, tmp_path, zoo, maker):
    files = tmp_path / "in"
    maker(files)
    modality = ZOO[zoo].modality
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: z\nmodality: {modality}\ninput: {files}\noutput: {tmp_path}/out\n"
                    f"registry: {tmp_path}/reg\nmodel: zoo:{zoo}\nlossless: true\nbatch_size: 4\nworkers: 1\n")
    run_cli("compress", str(spec))
    meta = tables.dataset(tmp_path / "out").metadata
    assert meta["models"][modality]["ref"] == f"zoo:{zoo}@1"  # an exact archive: the model joins per modality
    run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "restored"))
    originals = {str(p.relative_to(files)): p.read_bytes() for p in files.rglob("*") if p.is_file()}
    restored = {str(p.relative_to(tmp_path / "restored")): p.read_bytes()
                for p in (tmp_path / "restored").rglob("*") if p.is_file()}
    assert restored == originals

    archive = aec.open(str(tmp_path / "out"))
    rows = archive.dataset.to_table(columns=["id", "key", "shape", "payload"])
    for key, data in zip(rows.column("key").to_pylist(), archive.decode(rows)):
        assert data == originals[key]
