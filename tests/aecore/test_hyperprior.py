"""The hyperprior family: layers, entropy models, the latent codec, the integer hyper path."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from aecore import build_model, build_objective, dump_bundle, load_bundle, read_bundle
from aecore.entropy_models import EntropyBottleneck, GaussianConditional, TableCoder
from aecore.latent_codecs import HyperpriorLatentCodec, IntegerNet
from aecore.latent_codecs.integer import ACT_BITS, to_fixed
from aecore.layers import GDN, MaskedConv, anchor_mask


def test_gdn_is_the_formula_and_its_parameters_stay_non_negative():
    torch.manual_seed(0)
    gdn = GDN(4)
    x = torch.randn(2, 4, 3, 5)
    beta, gamma = gdn._beta(gdn.beta), gdn._gamma(gdn.gamma)
    norm = beta.view(1, -1, 1, 1) + torch.einsum("ij,bjhw->bihw", gamma, x**2)
    torch.testing.assert_close(gdn(x), x / torch.sqrt(norm))
    torch.testing.assert_close(GDN(4, inverse=True)(x), x * torch.sqrt(norm))  # same initial beta, gamma
    opt = torch.optim.SGD(gdn.parameters(), lr=10.0)
    for _ in range(3):  # steps that push gamma and beta negative
        opt.zero_grad()
        (gdn._gamma(gdn.gamma).sum() + gdn._beta(gdn.beta).sum()).backward()
        opt.step()
    with torch.no_grad():
        assert float(gdn._gamma(gdn.gamma).min()) >= 0 and float(gdn._beta(gdn.beta).min()) > 0
    assert GDN(3)(torch.randn(2, 3, 17)).shape == (2, 3, 17)  # 1-D as well


def test_checkerboard_mask_sees_only_anchors():
    conv = MaskedConv(1, 1, 5, dims=2)
    with torch.no_grad():
        conv.conv.weight.fill_(1.0)
        conv.conv.bias.zero_()
    y = torch.randn(1, 1, 8, 8)
    anchors = anchor_mask((8, 8))
    ctx = conv(y * anchors)
    full = conv(y)
    non_anchor = anchors == 0
    torch.testing.assert_close(ctx[0, 0][non_anchor], full[0, 0][non_anchor])  # nothing but anchors
    assert float(conv.mask.sum()) == 12  # the 12 taps at odd offsets of a 5x5 kernel
    assert float(MaskedConv(1, 1, 5, dims=1).mask.sum()) == 2


def test_table_coder_round_trips_with_escapes():
    rng = np.random.default_rng(0)
    probs = [np.array([0.2, 0.5, 0.2, 0.1]), np.array([0.05, 0.1, 0.2, 0.3, 0.2, 0.1, 0.05 - 1e-9, 1e-9])]
    coder = TableCoder(TableCoder.flatten([TableCoder.quantize(p) for p in probs]), np.array([1, 3]))
    index = rng.integers(0, 2, size=(5, 40))
    values = rng.integers(-3, 4, size=(5, 40))
    values[0, :3] = [900, -123456, 2**31]  # far outside both tables
    data = coder.encode(values, index)
    np.testing.assert_array_equal(coder.decode(data, index), values)
    assert coder.decode(coder.encode(np.zeros(0), np.zeros(0)), np.zeros(0)).size == 0


def test_entropy_bottleneck_codes_near_its_density():
    torch.manual_seed(0)
    eb = EntropyBottleneck(3)
    z = torch.randn(4, 3, 16, 16) * torch.tensor([0.5, 2.0, 6.0]).view(1, 3, 1, 1)
    opt = torch.optim.Adam(eb.parameters(), lr=0.05)
    for _ in range(300):  # fit the density to the data it will code
        opt.zero_grad()
        _, lik = eb(z, training=True)
        (-torch.log2(lik).mean()).backward()
        opt.step()
    eb.update_tables()
    z_hat = torch.round(z)[0].numpy().astype(np.int64)
    ideal = float(-torch.log2(eb.likelihood(torch.round(z)[:1])).sum())
    data = eb.coder().encode(z_hat, eb.channel_index(z_hat.shape))
    assert 8 * len(data) < ideal * 1.03 + 64
    np.testing.assert_array_equal(eb.coder().decode(data, eb.channel_index(z_hat.shape)), z_hat)


@pytest.mark.parametrize("scale", [0.2, 1.5, 12.0, 90.0])
def test_gaussian_conditional_codes_near_the_entropy(scale):
    gc = GaussianConditional()
    gc.update_tables()
    rng = np.random.default_rng(1)
    v = np.round(rng.normal(0, scale, 4000)).astype(np.int64)
    fixed = np.full(v.shape, math.ceil(scale * 2**ACT_BITS))
    index = gc.index(fixed, ACT_BITS)
    data = gc.coder().encode(v, index)
    s = torch.tensor(scale, dtype=torch.float64)
    lik = gc.likelihood(torch.from_numpy(v).double(), s, torch.zeros(()))
    ideal = float(-torch.log2(lik).sum())
    assert 8 * len(data) < ideal * 1.05 + 64
    np.testing.assert_array_equal(gc.coder().decode(data, index), v)


@pytest.mark.parametrize("dims,checkerboard", [(2, False), (2, True), (1, True)])
def test_latent_codec_round_trip_is_exact(dims, checkerboard):
    torch.manual_seed(0)
    codec = HyperpriorLatentCodec(8, 6, dims=dims, checkerboard=checkerboard)
    shape = (8, 5, 7) if dims == 2 else (8, 23)
    y = torch.randn(1, *shape) * 4
    out = codec(y)  # training forward: shapes and likelihoods
    assert out["y_hat"].shape == y.shape and out["likelihoods"]["y"].shape == y.shape
    codec.eval()
    codec.update_tables()
    strings, y_hat = codec.compress(y[0])
    assert len(strings) == (3 if checkerboard else 2)
    assert (y_hat - y[0]).abs().max() <= 0.5 + 1e-4  # rounded around the means
    back = codec.decompress(strings, shape)
    assert torch.equal(back, y_hat)


def test_integer_net_follows_the_float_net_and_ignores_threads():
    torch.manual_seed(0)
    codec = HyperpriorLatentCodec(16, 12, dims=2)
    net = IntegerNet(codec.h_s)
    z = torch.randint(-6, 7, (1, 12, 4, 5)).double()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    one = net(to_fixed(z))
    torch.set_num_threads(max(2, before))
    two = net(to_fixed(z))
    torch.set_num_threads(before)
    assert torch.equal(one, two)
    assert torch.equal(one, torch.round(one))  # integers
    ref = codec.h_s(z.float())
    np.testing.assert_allclose((one * 2.0**-ACT_BITS).numpy(), ref.detach().numpy(), atol=2e-3 * float(ref.abs().max()) + 1e-3)


def test_integer_synthesis_ignores_threads_and_tiling_and_follows_the_float_synthesis():
    from fractions import Fraction

    from aecore.tiling import tiled

    torch.manual_seed(1)
    model = build_model("image-hyperprior", "tiny").eval()
    with torch.no_grad():  # GDNs away from their identity start, so the integer IGDN is exercised
        for layer in model.synthesis:
            if isinstance(layer, GDN):
                layer.gamma.add_(0.3 * torch.rand_like(layer.gamma))
    exact = model.exact_synthesis()
    y_hat = torch.round(torch.randn(1, 32, 12, 10) * 3) / 2
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    one = exact(y_hat)
    torch.set_num_threads(max(2, before))
    two = exact(y_hat)
    pieces = tiled(exact, y_hat, 4, 4, Fraction(16))
    torch.set_num_threads(before)
    assert torch.equal(one, two) and torch.equal(one, pieces)
    ref = model.g_s(y_hat).detach()
    assert float((one - ref).abs().max()) < 2e-3 * float(ref.abs().max()) + 1e-3
    model.train()  # new weights after training: the integer twin is rebuilt
    assert model.eval().exact_synthesis() is not exact


@pytest.mark.parametrize("name", ["plain", "sparse-l1", "sparse-kl", "contractive", "denoising", "variational"])
def test_regularizers_compose_with_the_hyperprior(name):
    from aecore.regularizers import model_overrides

    torch.manual_seed(0)
    model = build_model("image-hyperprior", "tiny", **model_overrides([name]))
    objective = build_objective({name: None}, lmbda=model.default_lmbda)
    x = torch.rand(2, 3, 64, 64)
    terms = objective(model, x)
    terms["loss"].backward()
    assert math.isfinite(float(terms["loss"])) and terms["bits_per_element"] > 0
    assert all(p.grad is not None for p in model.analysis.parameters())


def _tiny_bundle(**config) -> bytes:
    torch.manual_seed(0)
    model = build_model("image-hyperprior", "tiny", checkerboard=True, **config)
    model.eval()
    model.update_tables()
    return dump_bundle(model, "image-hyperprior", "image")


def test_bundle_is_safetensors_and_float16_tables_stay_exact():
    blob = _tiny_bundle()
    header = read_bundle(blob)
    assert header["model"] == "image-hyperprior" and header["config"]["checkerboard"] is True
    model = load_bundle(blob).model
    half = dump_bundle(model, "image-hyperprior", "image", dtype=torch.float16)
    assert len(half) < len(blob) * 0.7
    again = read_bundle(half)["state_dict"]
    assert torch.equal(again["latent_codec.gaussian_conditional.pmf"],
                       model.state_dict()["latent_codec.gaussian_conditional.pmf"])


_DECODE = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
from aecore import load_bundle
blob = open(sys.argv[2], "rb").read()
payload = open(sys.argv[3], "rb").read()
data, _, _ = load_bundle(blob).decode(payload)
sys.stdout.buffer.write(data)
"""


def test_a_payload_encoded_on_one_thread_decodes_identically_in_another_process_on_two(tmp_path):
    from tests.conftest import png_bytes

    blob = _tiny_bundle()
    rng = np.random.default_rng(3)
    # larger than a synthesis tile (compressor.EXACT_TILE_POSITIONS): the decoder runs g_s in tiles
    image = (np.clip(rng.normal(0.5, 0.2, (530, 90, 1)) + np.linspace(0, 0.3, 90)[None, :, None], 0, 1)
             * np.ones((1, 1, 3)) * 255).astype(np.uint8)
    torch.set_num_threads(1)
    try:
        comp = load_bundle(blob)
        payload = comp.encode([comp.load(png_bytes(image))])[0].payload
        here, _, _ = comp.decode(payload)
    finally:
        torch.set_num_threads(2)
    (tmp_path / "m").write_bytes(blob)
    (tmp_path / "p").write_bytes(payload)
    there = subprocess.run([sys.executable, "-c", _DECODE, "2", str(tmp_path / "m"), str(tmp_path / "p")],
                           capture_output=True, check=True).stdout
    assert there == here


def test_a_bundle_whose_config_claims_more_than_its_tensors_is_refused_before_building():
    """Issue 27, item 10: a small bundle whose header asks for a huge model is checked on the meta
    device against the tensors it holds; nothing is allocated."""
    import json

    from safetensors.torch import save as save_tensors

    from aecore.bundle import FORMAT, BundleError, load_bundle

    header = {"format": FORMAT, "model": "image-hyperprior", "modality": "image", "codec": {}, "extra": {},
              "config": {"channels": 4096, "latent_channels": 8192, "hyper_channels": 4096}}
    blob = save_tensors({"x": torch.zeros(1)}, metadata={"aec": json.dumps(header)})
    with pytest.raises(BundleError):
        load_bundle(blob)
