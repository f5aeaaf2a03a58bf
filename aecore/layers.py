"""Building blocks of the learned codecs, written once for 1-D (audio, text) and 2-D (images).

- :class:`GDN` — generalized divisive normalization and its inverse (Ballé, Laparra, Simoncelli,
  "Density modeling of images using a generalized normalization transformation", ICLR 2016)::

      y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)        (inverse: x_i * sqrt(...))

  ``beta`` and ``gamma`` are kept non-negative by the reparametrization of Ballé et al. (2018):
  ``value = max(p, bound)^2 - pedestal``, whose gradient still flows where the bound is active
  and the step would move the parameter back into range (:func:`lower_bound`).
- :func:`conv` / :func:`deconv` — stride-``s`` convolutions of a given dimensionality with the
  padding that maps ``n`` positions to ``n / s`` (and back).
- :class:`MaskedConv` — the checkerboard context of He et al. (CVPR 2021): each position sees
  only the anchors around it (positions whose index sum is even), in any dimensionality.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GDN", "MaskedConv", "anchor_mask", "conv", "deconv", "lower_bound"]

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d}


class _LowerBound(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:  # noqa: ANN001
        ctx.save_for_backward(x)
        ctx.bound = bound
        return torch.clamp(x, min=bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        # Pass the gradient where x is above the bound, or where descent would raise x.
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes, None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """``max(x, bound)`` whose gradient does not vanish below the bound when it points up."""
    return _LowerBound.apply(x, bound)


class _NonNegative(nn.Module):
    """``value = max(p, bound)^2 - pedestal`` with ``bound = sqrt(minimum + pedestal)``."""

    pedestal = 2.0**-18

    def __init__(self, minimum: float = 0.0) -> None:
        super().__init__()
        self.bound = (minimum + self.pedestal) ** 0.5

    def init(self, value: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(torch.clamp(value + self.pedestal, min=self.pedestal))

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return lower_bound(p, self.bound) ** 2 - self.pedestal


class GDN(nn.Module):
    """GDN over the channel axis of ``[B, C, *positions]``; ``inverse=True`` for IGDN."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self._beta = _NonNegative(beta_min)
        self._gamma = _NonNegative()
        self.beta = nn.Parameter(self._beta.init(torch.ones(channels)))
        self.gamma = nn.Parameter(self._gamma.init(gamma_init * torch.eye(channels)))

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``beta`` and ``gamma`` as the formula uses them (through the non-negative reparametrization)."""
        return self._beta(self.beta), self._gamma(self.gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.effective()
        shape = (1, -1) + (1,) * (x.dim() - 2)
        # sum_j gamma_ij x_j^2 is a 1x1 convolution of x^2: one matmul over the channel axis.
        norm = torch.einsum("ij,bj...->bi...", gamma, x * x) + beta.view(shape)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


def conv(c_in: int, c_out: int, kernel: int = 5, stride: int = 2, dims: int = 2) -> nn.Module:
    return _CONV[dims](c_in, c_out, kernel, stride=stride, padding=kernel // 2)


def deconv(c_in: int, c_out: int, kernel: int = 5, stride: int = 2, dims: int = 2) -> nn.Module:
    return _DECONV[dims](c_in, c_out, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def anchor_mask(shape: tuple[int, ...], device: torch.device | None = None) -> torch.Tensor:
    """1 where a position is an anchor of the checkerboard (its index sum is even), else 0."""
    grids = torch.meshgrid(*(torch.arange(n, device=device) for n in shape), indexing="ij")
    return (sum(grids) % 2 == 0).to(torch.float32)


class MaskedConv(nn.Module):
    """A convolution that sees only the checkerboard's anchors from a non-anchor position: the
    kernel taps at an odd offset sum from the centre (He et al. 2021, Fig. 3)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 5, dims: int = 2) -> None:
        super().__init__()
        self.conv = _CONV[dims](c_in, c_out, kernel, padding=kernel // 2)
        offsets = anchor_mask((kernel,) * dims)  # centre (k//2, ...) has an even sum for odd k when k//2 is even
        centre_even = (kernel // 2 * dims) % 2 == 0
        taps = 1.0 - offsets if centre_even else offsets
        self.register_buffer("mask", taps[None, None], persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight * self.mask

    @property
    def bias(self) -> torch.Tensor:
        return self.conv.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv._conv_forward(x, self.weight, self.conv.bias)
