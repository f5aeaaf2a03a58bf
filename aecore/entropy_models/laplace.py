"""Learned entropy models of the latents, for the rate term of rate–distortion training.

``FactorizedLaplacePrior`` gives each latent channel c a Laplace density with learned location
and scale, integrated over the quantization bin (Ballé et al., ICLR 2017, with a Laplace in
place of their non-parametric density):

    p(y_hat) = F_c(y_hat + 1/2) - F_c(y_hat - 1/2),      R = sum -log2 p(y_hat)   [bits]

where y_hat is y plus uniform noise in training. The bitstream itself is coded under
per-channel tables fitted to the trained latents (``aecore.codecs``).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FactorizedLaplacePrior"]

_LIKELIHOOD_FLOOR = 1e-9


class FactorizedLaplacePrior(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(channels))
        self.log_scale = nn.Parameter(torch.zeros(channels))

    def _view(self, p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, *([1] * (y.dim() - 2)))

    def cdf(self, v: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        z = (v - loc) / scale
        return torch.where(z < 0, 0.5 * torch.exp(torch.clamp(z, max=0)), 1 - 0.5 * torch.exp(-torch.clamp(z, min=0)))

    def likelihood(self, y_hat: torch.Tensor) -> torch.Tensor:
        loc = self._view(self.loc, y_hat)
        scale = self._view(self.log_scale.exp(), y_hat) + 1e-6
        # Both bin edges taken on the near side of the mode keeps the difference precise in the tails.
        d = torch.abs(y_hat - loc)
        upper = self.cdf(loc - d + 0.5, loc, scale)
        lower = self.cdf(loc - d - 0.5, loc, scale)
        return torch.clamp(upper - lower, min=_LIKELIHOOD_FLOOR)

    def bits(self, y_hat: torch.Tensor) -> torch.Tensor:
        return -torch.log2(self.likelihood(y_hat))
