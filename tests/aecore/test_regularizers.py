"""Each regularizer equals its definition computed directly; every variant learns."""

import math

import pytest
import torch

from aecore import build_model, build_objective
from aecore.entropy_models import FactorizedLaplacePrior
from aecore.models import ImageConvAE
from aecore.registry import REGULARIZERS
from aecore.regularizers import ContractivePenalty, model_overrides


def tiny(**kw) -> ImageConvAE:
    torch.manual_seed(0)
    return ImageConvAE(channels=(8, 8), latent_channels=4, native_size=8, **kw)


def batch(n: int = 4, size: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_sparse_l1_is_weight_times_mean_abs_code():
    model, x = tiny(), batch()
    out = model(x)
    reg = REGULARIZERS["sparse-l1"](0.3)
    assert torch.allclose(reg(model, x, out), 0.3 * out["y"].abs().mean())


def test_sparse_kl_is_sum_of_bernoulli_kls_of_mean_activations():
    model, x = tiny(), batch()
    out = model(x)
    rho, beta = 0.05, 0.7
    reg = REGULARIZERS["sparse-kl"](beta)
    got = reg(model, x, out)
    y = out["y"]
    expected = 0.0
    for j in range(y.shape[1]):
        r = torch.sigmoid(y[:, j]).mean().item()
        expected += rho * math.log(rho / r) + (1 - rho) * math.log((1 - rho) / (1 - r))
    assert got.item() == pytest.approx(beta * expected, rel=1e-5)


def full_jacobian_norm(model: ImageConvAE, x: torch.Tensor) -> float:
    norms = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: model.g_a(v[None])[0], xi)
        norms.append(jac.pow(2).sum().item())
    return sum(norms) / len(norms)


def test_contractive_exact_equals_autograd_full_jacobian():
    model, x = tiny(), batch()
    reg = ContractivePenalty(weight=2.0)
    x_in = x.clone().requires_grad_(True)
    got = reg(model, x_in, model(x_in)).item()
    assert got == pytest.approx(2.0 * full_jacobian_norm(model, x), rel=1e-4)


def test_contractive_hutchinson_is_unbiased():
    model, x = tiny(), batch(2)
    x_in = x.clone().requires_grad_(True)
    y = model.g_a(x_in)
    torch.manual_seed(3)
    estimate = ContractivePenalty.hutchinson(x_in, y, projections=1000).item()
    assert estimate == pytest.approx(full_jacobian_norm(model, x), rel=0.1)
    # Large latents take the estimator path.
    assert ContractivePenalty(exact_max=1).penalty(model, x_in, {"y": y}).item() > 0


def test_denoising_corrupts_the_input_and_adds_no_term():
    model, x = tiny(), batch()
    reg = REGULARIZERS["denoising"](0.2)
    noisy = reg.corrupt(x)
    assert (noisy - x).std().item() == pytest.approx(0.2, rel=0.15)
    assert reg(model, noisy, model(noisy)).item() == 0.0


def test_variational_kl_matches_the_gaussian_formula():
    model = tiny(**model_overrides(["variational"]))
    assert model.analysis_channels == 8
    x = batch()
    model.train()
    out = model(x)
    mu, logvar = out["mu"], out["logvar"]
    expected = 0.5 * torch.mean(mu**2 + torch.exp(logvar) - 1 - logvar)
    assert torch.allclose(REGULARIZERS["variational"](0.5)(model, x, out), 0.5 * expected)
    model.eval()
    assert torch.equal(model.g_a(x), model(x)["y"])  # inference codes the posterior mean


def test_learned_prior_is_a_distribution_over_integers():
    prior = FactorizedLaplacePrior(2)
    with torch.no_grad():
        prior.loc.copy_(torch.tensor([0.3, -2.0]))
        prior.log_scale.copy_(torch.tensor([0.0, 1.0]))
    ints = torch.arange(-200, 201, dtype=torch.float32).view(1, 1, -1).expand(1, 2, -1).contiguous()
    total = prior.likelihood(ints).sum(-1)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-4)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_every_variant_trains_and_lowers_its_loss(name):
    regs = {name: None}
    model = tiny(**model_overrides(regs))
    objective = build_objective(regs, lmbda=0.01)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    x = batch(8)
    torch.manual_seed(0)
    losses = []
    for _ in range(60):
        terms = objective(model, x)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses[::10]


def test_regularizers_compose_with_weights():
    objective = build_objective({"sparse-l1": 0.5, "contractive": 1e-3, "denoising": 0.05}, lmbda=0.02)
    model = tiny()
    terms = objective(model, batch())
    assert {"distortion", "rate", "sparse-l1", "contractive", "denoising", "loss"} <= set(terms)
    parts = terms["distortion"] + terms["rate"] + terms["sparse-l1"] + terms["contractive"] + terms["denoising"]
    assert torch.allclose(terms["loss"], parts)


def test_unknown_regularizer_names_the_nearest():
    with pytest.raises(KeyError, match="did you mean 'contractive'"):
        build_objective({"contractiv": None})


def test_build_model_keeps_presets():
    assert build_model("image-conv", "tiny").latent_channels == 12


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
@pytest.mark.parametrize("model_name,shape", [("text-byte", (4, 1, 64)), ("audio-conv", (4, 1, 256))])
def test_every_regularizer_works_on_1d_models(name, model_name, shape):
    """Any regularizer with any modality's model: text's contractive term is taken on the byte embedding."""
    torch.manual_seed(0)
    regs = {name: None}
    model = build_model(model_name, "tiny", **model_overrides(regs))
    x = torch.rand(*shape)
    if model_name == "text-byte":
        x = torch.round(x * 255) / 255
    terms = build_objective(regs, lmbda=0.01)(model, x)
    terms["loss"].backward()
    assert torch.isfinite(terms["loss"])
    assert all(p.grad is not None for p in model.analysis.parameters())
    if name == "contractive":
        assert terms["contractive"].item() > 0
