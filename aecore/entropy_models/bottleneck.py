"""The entropy bottleneck: a learned non-parametric density per channel (Ballé, Minnen, Singh,
Hwang, Johnston, "Variational image compression with a scale hyperprior", ICLR 2018, App. 6.1).

Each channel's cumulative is a small monotone network ``c(v)``: layers of softplus-positive
matrices with ``tanh`` gates (filters 1-3-3-3-1). The likelihood of a quantized value is
``c(v + 1/2) - c(v - 1/2)``, evaluated on the side of the median where it does not cancel.
In training, ``v`` is ``z`` plus uniform noise; at inference the density is tabulated once over
the integers (:meth:`tables`) and those integer tables are what the range coder uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aecore.entropy_models.tables import TableCoder
from aecore.layers import lower_bound

__all__ = ["EntropyBottleneck"]

_LIKELIHOOD_FLOOR = 1e-9


class EntropyBottleneck(nn.Module):
    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0,
                 max_radius: int = 255, tail_mass: float = 1e-6) -> None:
        super().__init__()
        self.channels = channels
        self.max_radius = max_radius
        self.tail_mass = tail_mass
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        # Integer tables for the coder, filled by ``update_tables`` (saved with the weights).
        # (Their size depends on the radii, so loading a state dict resizes them.)
        self.register_buffer("pmf", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("radius", torch.zeros(channels, dtype=torch.int32))

    def _cumulative_logits(self, v: torch.Tensor) -> torch.Tensor:
        """``v [C, 1, n]`` -> logits of the cumulative at ``v``, ``[C, 1, n]``."""
        logits = v
        for i, matrix in enumerate(self.matrices):
            logits = torch.matmul(F.softplus(matrix), logits) + self.biases[i]
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i]) * torch.tanh(logits)
        return logits

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability of the bin around each element of ``z [B, C, *positions]``."""
        v = z.transpose(0, 1).reshape(self.channels, 1, -1)
        lower = self._cumulative_logits(v - 0.5)
        upper = self._cumulative_logits(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lower_bound(lik, _LIKELIHOOD_FLOOR)
        shape = (z.shape[1], z.shape[0], *z.shape[2:])
        return lik.reshape(shape).transpose(0, 1)

    def forward(self, z: torch.Tensor, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z_hat, likelihoods)``: uniform noise in training, rounding otherwise."""
        z_hat = z + torch.empty_like(z).uniform_(-0.5, 0.5) if training else torch.round(z)
        return z_hat, self.likelihood(z_hat)

    @torch.no_grad()
    def update_tables(self) -> None:
        """Tabulate each channel's density over ``[-R_c, R_c]``, with ``R_c`` the smallest radius
        leaving less than ``tail_mass`` outside (escape symbol for the rest)."""
        device = self.matrices[0].device
        r = self.max_radius
        edges = torch.arange(-r, r + 2, device=device, dtype=torch.float32) - 0.5  # -r-1/2 .. r+1/2
        cdf = torch.sigmoid(self._cumulative_logits(edges.expand(self.channels, 1, -1)))[:, 0].double().cpu().numpy()
        rows = []
        radius = np.zeros(self.channels, np.int64)
        for c in range(self.channels):
            tails = cdf[c, r - np.arange(r + 1)] + (1.0 - cdf[c, r + 1 + np.arange(r + 1)])  # radius 0..r
            rc = int(np.argmax(tails < self.tail_mass)) if (tails < self.tail_mass).any() else r
            probs = np.diff(cdf[c, r - rc : r + rc + 2])
            escape = max(cdf[c, r - rc] + 1.0 - cdf[c, r + rc + 1], 0.0)
            rows.append(TableCoder.quantize(np.clip(np.append(probs, escape), 0.0, 1.0)))
            radius[c] = rc
        self.pmf = torch.from_numpy(TableCoder.flatten(rows)).to(torch.int32)
        self.radius = torch.from_numpy(radius).to(torch.int32)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if prefix + "pmf" in state_dict:  # the tables' size is the saved one
            self.pmf = torch.empty_like(state_dict[prefix + "pmf"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def coder(self) -> TableCoder:
        if self.pmf.numel() == 0:
            raise RuntimeError("the entropy bottleneck's tables are empty: call update_tables() after training")
        return TableCoder(self.pmf.cpu().numpy(), self.radius.cpu().numpy())

    @staticmethod
    def channel_index(shape: tuple[int, ...]) -> np.ndarray:
        """The table of each element of a ``[C, *positions]`` tensor: its channel."""
        return np.broadcast_to(np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1)), shape)
