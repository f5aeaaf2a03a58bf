"""Regularizers added to the reconstruction loss, composable and named in the spec.

Each one is ``weight * penalty(model, x, out)``; :class:`Objective` sums them with the
distortion term ``||x - x_hat||^2`` (mean squared error).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from aecore.registry import REGULARIZERS, lookup, register_regularizer

__all__ = ["Objective", "Regularizer", "L1SparsityPenalty", "build_objective"]


class Regularizer(nn.Module):
    default_weight: float = 1.0

    def __init__(self, weight: float | None = None) -> None:
        super().__init__()
        self.weight = self.default_weight if weight is None else float(weight)

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.weight * self.penalty(model, x, out)


@register_regularizer("sparse-l1")
class L1SparsityPenalty(Regularizer):
    """lambda * ||y||_1 per latent element: sparse codes, and a rate proxy — small |y|
    puts the quantized symbols near zero, where the prior concentrates its mass."""

    default_weight = 0.001

    def penalty(self, model: nn.Module, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return out["y"].abs().mean()


class Objective(nn.Module):
    """Distortion (MSE) plus weighted regularizers; returns every term for logging."""

    def __init__(self, regularizers: Mapping[str, Regularizer]) -> None:
        super().__init__()
        self.regularizers = nn.ModuleDict(dict(regularizers))

    def forward(self, model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(x)
        terms = {"mse": torch.mean((out["x_hat"] - x) ** 2)}
        for name, reg in self.regularizers.items():
            terms[name] = reg(model, x, out)
        terms["loss"] = sum(terms.values())
        terms["y_hat"] = out["y_hat"]
        return terms


def build_objective(spec: Mapping[str, float | None]) -> Objective:
    """``{"sparse-l1": 0.01}`` -> an :class:`Objective` (``None`` weight: the default)."""
    return Objective({name: lookup(REGULARIZERS, name, "regularizer")(weight) for name, weight in spec.items()})
