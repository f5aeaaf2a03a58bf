"""The autoencoder contract shared by every model (CompressAI notation).

    x --g_a--> y --Q--> y_hat --g_s--> x_hat

``Q`` is rounding at inference; during training it is replaced by additive uniform
noise U(-1/2, 1/2), the differentiable proxy of Ballé et al. (ICLR 2017).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["ConvAutoEncoder"]


class ConvAutoEncoder(nn.Module):
    """Base class: subclasses build ``g_a`` and ``g_s``; presets live in ``PRESETS``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: total down-sampling factor of ``g_a`` along each spatial dimension
    stride: int
    latent_channels: int
    #: spatial size of the training crops and of the fixed-size query latent
    native_size: int

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> ConvAutoEncoder:
        if preset not in cls.PRESETS:
            raise KeyError(f"unknown size preset {preset!r} for {cls.__name__} (known: {', '.join(cls.PRESETS)})")
        return cls(**{**cls.PRESETS[preset], **overrides})

    def g_a(self, x: torch.Tensor) -> torch.Tensor:
        return self.analysis(x)

    def g_s(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.synthesis(y_hat)

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        if self.training:
            return y + torch.empty_like(y).uniform_(-0.5, 0.5)
        return torch.round(y)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.g_a(x)
        y_hat = self.quantize(y)
        return {"x_hat": self.g_s(y_hat), "y": y, "y_hat": y_hat}

    def latent_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        return (self.latent_channels, *(-(-s // self.stride) for s in spatial))
