"""Where a train job starts: the zoo model by default, scratch, a registry version, or (scheduled
retraining) production."""

from __future__ import annotations

import pytest

from aecore import build_model, dump_bundle
from jobs.models import load_model, starting_point
from jobs.registry import ModelRegistry, RegistryError
from jobs.schedule import ScheduleStore
from jobs.spec import parse_spec

BASE = {"kind": "train", "name": "t", "input": "in", "model": "photos"}


def _bundle(preset: str = "tiny") -> bytes:
    model = build_model("image-hyperprior", preset)
    model.eval()
    model.update_tables()
    return dump_bundle(model, "image-hyperprior", "image")


def test_a_new_image_model_starts_from_the_zoo(tmp_path):
    start = starting_point(parse_spec(BASE), ModelRegistry(str(tmp_path)))
    assert start.ref == "zoo:image-small@1" and start.architecture == "image-hyperprior" and start.bundle


def test_init_none_a_preset_or_another_architecture_start_from_scratch(tmp_path):
    reg = ModelRegistry(str(tmp_path))
    assert starting_point(parse_spec({**BASE, "init": "none"}), reg).bundle is None
    tiny = starting_point(parse_spec({**BASE, "preset": "tiny"}), reg)
    assert tiny.bundle is None and tiny.preset == "tiny"
    conv = starting_point(parse_spec({**BASE, "architecture": "image-conv"}), reg)
    assert conv.bundle is None and conv.architecture == "image-conv"


def test_continue_takes_production_else_the_default(tmp_path):
    reg = ModelRegistry(str(tmp_path))
    spec = parse_spec({**BASE, "init": "continue"})
    assert starting_point(spec, reg).ref == "zoo:image-small@1"  # nothing in production yet
    mv = reg.register("photos", _bundle(), {})
    reg.promote("photos", mv.version)
    start = starting_point(spec, reg)
    assert start.ref == "photos@1" and start.bundle == reg.load("photos@1")[1]


def test_a_scheduled_retraining_continues_from_production_unless_its_spec_says_otherwise(tmp_path):
    store = ScheduleStore(tmp_path / "schedules.db")
    store.add("nightly", "0 2 * * *", parse_spec(BASE), None)
    store.add("scratch", "0 3 * * *", parse_spec({**BASE, "init": "none"}), None)
    assert store.spec(store.get("nightly")).init == "continue"
    assert store.spec(store.get("scratch")).init == "none"
    assert (tmp_path / "schedules.db").stat().st_mode & 0o777 == 0o600


def test_init_of_another_modality_is_refused(tmp_path):
    reg = ModelRegistry(str(tmp_path))
    reg.register("texts", dump_bundle(build_model("text-byte", "tiny").uniform_prior(), "text-byte", "text"), {})
    with pytest.raises(RegistryError, match="is a text model, not image"):
        starting_point(parse_spec({**BASE, "init": "texts@1"}), reg)


def test_zoo_references_load_without_a_registry(tmp_path):
    mv, bundle = load_model("zoo:image-small-q2", ModelRegistry(str(tmp_path)))
    assert mv.name == "zoo:image-small-q2" and mv.info["rate_point"] == 2.0 and bundle
    with pytest.raises(RegistryError, match="did you mean zoo:image-small"):
        load_model("zoo:image-smal", ModelRegistry(str(tmp_path)))


def test_a_new_audio_model_starts_from_the_audio_zoo_model(tmp_path):
    start = starting_point(parse_spec({**BASE, "modality": "audio"}), ModelRegistry(str(tmp_path)))
    assert start.ref == "zoo:audio-small@1" and start.architecture == "audio-hyperprior" and start.bundle
    mv, _ = load_model("zoo:audio-small-q3", ModelRegistry(str(tmp_path)))
    assert mv.info["rate_point"] == 3.0


def test_a_dataset_never_picks_its_own_registry_or_escapes_one(tmp_path):
    """Issue 27, item 10: a registry recorded relative to (or inside) the dataset is not used, and a
    recorded model reference cannot climb out of the registry."""
    from jobs.models import _dataset_registry, dataset_model
    from jobs.registry import RegistryError

    ds = tmp_path / "ds"
    inside = str(ds / "_aec" / "reg")
    for recorded in ("ds/_aec/reg", inside):
        assert _dataset_registry({"registry": recorded}, None, str(ds)).loc.path != inside
    assert _dataset_registry({"registry": str(tmp_path / "reg")}, None, str(ds)).loc.path == str(tmp_path / "reg")
    with pytest.raises(RegistryError, match="is not NAME@VERSION"):
        dataset_model({"model_ref": "../../etc@1", "registry": str(tmp_path / "reg")}, str(ds))
