"""The training loop's pieces that need no Ray: the learning-rate schedule and the warm start."""

from __future__ import annotations

import pytest
import torch

from aecore import build_model, dump_bundle
from cluster.train import TrainConfig, build_training_model, learning_rate


def test_the_schedule_warms_up_holds_and_decays_to_a_twentieth():
    total = 1000
    rates = [learning_rate(s, 1e-3, total) for s in range(total)]
    assert rates[0] == pytest.approx(1e-3 / 50) and rates[49] == pytest.approx(1e-3)  # 5 % warmup
    assert rates[500] == 1e-3 and rates[698] == 1e-3  # hold
    assert rates[-1] == pytest.approx(1e-3 / 20, rel=0.01) and all(a >= b for a, b in zip(rates[700:], rates[701:]))
    assert learning_rate(5, 1e-3, 0) == 1e-3  # no budget known: constant


def _cfg(**kw) -> TrainConfig:
    kw.setdefault("regularizers", {"plain": None})
    kw = {"lmbda": 0.01, "patches_per_item": 4, "seed": 0, "steps": None, **kw}
    return TrainConfig(modality="image", model="image-hyperprior", preset="tiny", epochs=1, batch_size=2,
                       learning_rate=1e-4, **kw)


def test_a_warm_start_takes_the_init_models_weights_and_architecture():
    torch.manual_seed(1)
    init = build_model("image-hyperprior", "tiny", checkerboard=True)
    init.eval()
    init.update_tables()
    model = build_training_model(_cfg(init=dump_bundle(init, "image-hyperprior", "image")))
    assert model.latent_codec.checkerboard  # the init model's config, not the preset's
    assert torch.equal(model.analysis[0].weight, init.analysis[0].weight)


def test_a_regularizer_the_init_model_was_not_trained_with_is_refused():
    init = build_model("image-hyperprior", "tiny")
    init.eval()
    init.update_tables()
    with pytest.raises(ValueError, match="trained without variational; set init: none"):
        build_training_model(_cfg(init=dump_bundle(init, "image-hyperprior", "image"),
                                  regularizers={"variational": None}))


def test_the_heldout_tenth_is_never_empty_and_follows_the_keys(tmp_path):
    from cluster.storage import InputFile, Location
    from cluster.train import split_heldout

    for n in (10, 11, 36, 500):
        names = [f"photo-{i:03d}.png" for i in range(n)]
        splits = []
        for root in (tmp_path / "a", tmp_path / "elsewhere" / "b"):
            loc = Location.of(str(root))
            held, train = split_heldout([InputFile(f"{loc.path}/{name}", 1) for name in names], loc)
            assert held and len(held) + len(train) == n
            splits.append([loc.key(f.path) for f in held])
        assert splits[0] == splits[1]  # the same files, wherever the collection lives
    few = Location.of(str(tmp_path))
    assert split_heldout([InputFile(f"{few.path}/{i}.png", 1) for i in range(9)], few)[0] == []


def test_fine_tuning_keeps_the_better_of_the_two_models():
    """Issue 24 item 2: the starting point stays where it codes the held-out tenth smaller."""
    from cluster.train import keep_better

    gate = ("bits_per_byte", -1)
    worse = keep_better(gate, b"tuned", {"bits_per_byte": 1.77}, b"start", {"bits_per_byte": 1.62})
    assert worse == ("starting point", b"start", {"bits_per_byte": 1.62},
                     {"fine-tuned": 1.77, "starting point": 1.62})
    better = keep_better(gate, b"tuned", {"bits_per_byte": 1.50}, b"start", {"bits_per_byte": 1.62})
    assert better[:2] == ("fine-tuned", b"tuned")
    assert keep_better(gate, b"tuned", {"bits_per_byte": 1.6}, b"start", {"bits_per_byte": 1.6})[0] == "fine-tuned"
    assert keep_better(("psnr", 1), b"t", {"psnr": 30.0}, b"s", {"psnr": 31.0})[0] == "starting point"
