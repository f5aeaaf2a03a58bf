"""Regularizers of the autoencoder family, composable and named in the spec.

The training objective is

    L = D(x, x_hat) + lmbda * R(y_hat) + sum_k  w_k * penalty_k

with D the model's distortion (MSE for signals, cross-entropy for bytes), R the rate in bits
per element under the model's learned prior, and the penalties below. Each regularizer is
named in a spec (``regularizer: contractive``, a list, or ``{name: weight}``):

==============  ==============================================================  ==========
name            definition                                                       reference
==============  ==============================================================  ==========
plain           no penalty: min ||x - x_hat||^2 (+ rate)                         —
sparse-l1       w * mean |y|                                                     —
sparse-kl       w * sum_j KL(rho || rho_hat_j), rho_hat_j = mean sigmoid(y_j)    Ng, CS294A notes
contractive     w * mean_i ||J_{g_a}(x_i)||_F^2                                  Rifai et al., ICML 2011
denoising       encode x~ = x + w * N(0, I), reconstruct x (w is the noise std)  Vincent et al., ICML 2008
variational     w * mean KL(N(mu, sigma^2) || N(0, I)) per latent element        Kingma & Welling, ICLR 2014
==============  ==============================================================  ==========

The contractive penalty is exact (the full Jacobian via ``torch.func.jacrev``) when the latent
of one sample has at most ``exact_max`` elements, else an unbiased Hutchinson estimate:
for u ~ N(0, I) in latent space, E ||u^T J||^2 = tr(J J^T) = ||J||_F^2, one VJP per projection.
For discrete inputs (text bytes) J is taken with respect to the embedded input, the first
continuous tensor of the encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from aecore.registry import REGULARIZERS, lookup, register_regularizer

__all__ = [
    "ContractivePenalty", "DenoisingCorruption", "KLSparsityPenalty", "L1SparsityPenalty", "Objective",
    "PlainAutoencoder",
    "Regularizer", "VariationalKLPenalty", "build_objective", "model_overrides",
]


def _core(model: nn.Module) -> nn.Module:
    """The autoencoder itself, also when wrapped by DDP."""
    return getattr(model, "module", model)


class Regularizer(nn.Module):
    default_weight: ClassVar[float] = 1.0
    #: model config a regularizer needs (e.g. a variational encoder)
    model_config: ClassVar[dict[str, Any]] = {}

    def __init__(self, weight: float | None = None) -> None:
        super().__init__()
        self.weight = self.default_weight if weight is None else float(weight)

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return x.new_zeros(())

    def forward(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.weight * self.penalty(model, x, out)


@register_regularizer("plain")
class PlainAutoencoder(Regularizer):
    """No penalty: the plain autoencoder, min ||x - g_s(g_a(x))||^2 (plus the rate term)."""

    def forward(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return x.new_zeros(())


@register_regularizer("sparse-l1")
class L1SparsityPenalty(Regularizer):
    """w * mean |y|: sparse codes, and symbols near zero, where the prior is cheap."""

    default_weight = 0.001

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return out["y"].abs().mean()


@register_regularizer("sparse-kl")
class KLSparsityPenalty(Regularizer):
    """beta * sum_j KL(rho || rho_hat_j) over latent channels j, where rho_hat_j is the mean
    activation sigmoid(y_j) over the batch and all positions (a convolutional channel shares
    its weights across positions, so it is one hidden unit of Ng's formulation)."""

    default_weight = 0.01

    def __init__(self, weight: float | None = None, rho: float = 0.05) -> None:
        super().__init__(weight)
        self.rho = rho

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        y = out["y"]
        dims = [d for d in range(y.dim()) if d != 1]
        rho_hat = torch.sigmoid(y).mean(dim=dims).clamp(1e-6, 1 - 1e-6)
        rho = self.rho
        return torch.sum(rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat)))


@register_regularizer("contractive")
class ContractivePenalty(Regularizer):
    """lambda * ||J_f(x)||_F^2 of the encoder f = g_a, averaged over the batch."""

    default_weight = 1e-4

    def __init__(self, weight: float | None = None, projections: int = 1, exact_max: int = 256) -> None:
        super().__init__(weight)
        self.projections = projections
        self.exact_max = exact_max

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        core = _core(model)
        # The encoder's first continuous input: x itself, or its embedding for bytes.
        e = core.embed(x.detach()).detach().requires_grad_(True)
        y = core.encode_embedded(e)
        if y[0].numel() <= self.exact_max:
            return self.exact(model, e)
        return self.hutchinson(e, y, self.projections)

    @staticmethod
    def exact(model: nn.Module, e: torch.Tensor) -> torch.Tensor:
        core = _core(model)
        jac = torch.func.vmap(torch.func.jacrev(lambda ei: core.encode_embedded(ei[None])[0]))(e)
        return jac.pow(2).flatten(1).sum(1).mean()

    @staticmethod
    def hutchinson(x: torch.Tensor, y: torch.Tensor, projections: int) -> torch.Tensor:
        total = x.new_zeros(())
        for _ in range(projections):
            u = torch.randn_like(y)
            (g,) = torch.autograd.grad(y, x, u, create_graph=True)
            total = total + g.pow(2).flatten(1).sum(1).mean()
        return total / projections


@register_regularizer("denoising")
class DenoisingCorruption(Regularizer):
    """Encode x~ = x + w * N(0, I), reconstruct the clean x; ``w`` is the noise std."""

    default_weight = 0.1

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight * torch.randn_like(x)

    def forward(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return x.new_zeros(())  # the corruption is the regularizer; it adds no penalty term


@register_regularizer("variational")
class VariationalKLPenalty(Regularizer):
    """beta * KL(N(mu, sigma^2) || N(0, I)), per latent element; with the distortion, the
    negative ELBO of a Gaussian VAE. The encoder outputs (mu, log sigma^2) and samples
    y = mu + sigma * eps in training; compression codes round(mu)."""

    default_weight = 1e-3
    model_config = {"variational": True}

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        mu, logvar = out["mu"], out["logvar"]
        return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1.0 - logvar)


class Objective(nn.Module):
    """Distortion + lmbda * rate + regularizers; returns every term for logging."""

    def __init__(self, regularizers: Mapping[str, Regularizer], lmbda: float = 0.0) -> None:
        super().__init__()
        self.regularizers = nn.ModuleDict(dict(regularizers))
        self.lmbda = lmbda

    def forward(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x_in = x
        for reg in self.regularizers.values():
            x_in = reg.corrupt(x_in)
        out = model(x_in)
        core = _core(model)
        terms = {"distortion": core.distortion(x, out)}
        if self.lmbda:
            terms["rate"] = self.lmbda * out["bits"].sum() / core.elements(x)
        for name, reg in self.regularizers.items():
            terms[name] = reg(model, x_in, out)
        terms["loss"] = sum(terms.values())
        terms["bits_per_element"] = (out["bits"].sum() / core.elements(x)).detach()
        return terms


def model_overrides(names: Mapping[str, Any] | list[str]) -> dict[str, Any]:
    """The model config the named regularizers need."""
    config: dict[str, Any] = {}
    for name in names:
        config.update(lookup(REGULARIZERS, name, "regularizer").model_config)
    return config


def build_objective(spec: Mapping[str, float | None], lmbda: float = 0.0) -> Objective:
    """``{"contractive": 1e-4, "denoising": None}`` -> an :class:`Objective` (``None``: default weight)."""
    return Objective({n: lookup(REGULARIZERS, n, "regularizer")(w) for n, w in spec.items()}, lmbda=lmbda)
