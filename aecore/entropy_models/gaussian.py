"""The Gaussian conditional: each latent element ``y_i`` coded under a Gaussian of mean ``mu_i``
and scale ``sigma_i`` predicted from side information (Ballé et al. 2018; the mean and scale
hyperprior of Minnen, Ballé, Toderici, NeurIPS 2018)::

    p(y_hat_i) = Phi((y_hat_i - mu_i + 1/2) / sigma_i) - Phi((y_hat_i - mu_i - 1/2) / sigma_i)

At inference the scale is rounded up to the nearest entry of a fixed table of ``levels`` scales
(log-spaced from 0.11 to 256, as CompressAI), and ``round(y - mu)`` is coded under that entry's
zero-mean table. The tables are integers computed once (``update_tables``) and saved with the
weights, so a decoder never evaluates ``Phi`` itself.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.special import ndtr
from torch import nn

from aecore.entropy_models.tables import TableCoder
from aecore.layers import lower_bound

__all__ = ["GaussianConditional", "scale_table"]

SCALE_MIN, SCALE_MAX, LEVELS = 0.11, 256.0, 64
_LIKELIHOOD_FLOOR = 1e-9
_TAIL = 6.2  # table radius in scales: the two tails beyond it hold ~6e-10


def scale_table(minimum: float = SCALE_MIN, maximum: float = SCALE_MAX, levels: int = LEVELS) -> np.ndarray:
    return np.exp(np.linspace(math.log(minimum), math.log(maximum), levels))


def _phi(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-v * (2**-0.5))


class GaussianConditional(nn.Module):
    def __init__(self, levels: int = LEVELS) -> None:
        super().__init__()
        table = scale_table(levels=levels)
        radius = np.ceil(table * _TAIL).astype(np.int64)
        self.register_buffer("scales", torch.from_numpy(table))
        self.register_buffer("pmf", torch.zeros(int((2 * radius + 2).sum()), dtype=torch.int32))
        self.register_buffer("radius", torch.from_numpy(radius).to(torch.int32))

    def likelihood(self, y: torch.Tensor, scales: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        v = torch.abs(y - means)
        s = lower_bound(scales, SCALE_MIN)
        lik = _phi((0.5 - v) / s) - _phi((-0.5 - v) / s)
        return lower_bound(lik, _LIKELIHOOD_FLOOR)

    @torch.no_grad()
    def update_tables(self) -> None:
        rows = []
        for s, r in zip(self.scales.tolist(), self.radius.tolist()):
            v = np.arange(-r, r + 1, dtype=np.float64)
            probs = ndtr((v + 0.5) / s) - ndtr((v - 0.5) / s)
            escape = 2.0 * ndtr(-(r + 0.5) / s)
            rows.append(TableCoder.quantize(np.append(probs, escape)))
        self.pmf.copy_(torch.from_numpy(TableCoder.flatten(rows)).to(torch.int32))

    def coder(self) -> TableCoder:
        if int(self.pmf.sum()) == 0:
            raise RuntimeError("the Gaussian conditional's tables are empty: call update_tables() after training")
        return TableCoder(self.pmf.cpu().numpy(), self.radius.cpu().numpy())

    def index(self, scales_fixed: np.ndarray, fraction_bits: int) -> np.ndarray:
        """Table entry of each fixed-point scale (``scale * 2**fraction_bits``, integers): the
        smallest table scale at or above it, compared in integers so every machine agrees."""
        table = np.ceil(self.scales.cpu().numpy() * (1 << fraction_bits)).astype(np.int64)
        idx = np.searchsorted(table, np.asarray(scales_fixed, np.int64), side="left")
        return np.minimum(idx, len(table) - 1)
