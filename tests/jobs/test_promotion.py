"""The promotion gate, both ways, on real models measured on real held-out files."""

from __future__ import annotations

import pytest

from aecore import build_model, dump_bundle
from cluster.storage import Location, list_collection
from cluster.train import measure_heldout
from jobs.promotion import decide
from jobs.registry import ModelRegistry


@pytest.fixture(scope="module")
def bundles(trained, photos):
    _, good = ModelRegistry(str(trained["registry"])).load("photos@1")
    bad = dump_bundle(build_model("image-conv", "tiny").uniform_prior(), "image-conv", "image")
    loc = Location.of(str(photos))
    files = list_collection(loc, (".png", ".jpg"))[:12]
    measure = lambda bundle: measure_heldout(bundle, loc, files)  # noqa: E731
    return {"good": good, "bad": bad, "measure": measure}


def test_a_worse_candidate_is_not_promoted(bundles):
    m = bundles["measure"]
    d = decide("if-better", "image", m(bundles["bad"]), (3, bundles["good"]), 0.1, m)
    assert not d.promote
    assert d.reason.startswith("not promoted, production stays v3: held-out psnr")
    assert d.candidate < d.production - 0.1


def test_a_better_candidate_is_promoted(bundles):
    m = bundles["measure"]
    d = decide("if-better", "image", m(bundles["good"]), (3, bundles["bad"]), 0.1, m)
    assert d.promote and d.reason.startswith("promoted: held-out psnr") and d.candidate > d.production


def test_tolerance_lets_a_slightly_worse_candidate_through(bundles):
    m = bundles["measure"]
    cand, prod = m(bundles["bad"]), m(bundles["good"])
    gap = prod["psnr"] - cand["psnr"]
    assert decide("if-better", "image", cand, (1, bundles["good"]), gap + 0.01, m).promote
    assert not decide("if-better", "image", cand, (1, bundles["good"]), gap - 0.01, m).promote


def test_policies_and_first_version(bundles):
    m = bundles["measure"]
    cand = m(bundles["bad"])
    assert decide("if-better", "image", cand, None, 0.1, m).promote  # nothing in production yet
    assert decide("always", "image", cand, (1, bundles["good"]), 0.0, m).promote
    assert not decide("never", "image", m(bundles["good"]), None, 0.0, m).promote


def test_text_gate_prefers_fewer_bits():
    from aecore import get_modality

    assert get_modality("text").gate_metric == ("bits_per_byte", -1)
    cand, prod = {"bits_per_byte": 4.0}, {"bits_per_byte": 4.5}
    d = decide("if-better", "text", cand, (1, _text_bundle()), 0.0, lambda b: prod)
    assert d.promote
    d = decide("if-better", "text", prod, (1, _text_bundle()), 0.0, lambda b: cand)
    assert not d.promote


def _text_bundle() -> bytes:
    return dump_bundle(build_model("text-byte", "tiny").uniform_prior(), "text-byte", "text")
