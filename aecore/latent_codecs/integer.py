"""Integer arithmetic for the networks that choose coding distributions (Ballé, Johnston, Minnen,
"Integer networks for data compression with latent-variable models", ICLR 2019).

A float network predicts the mean and scale each latent is coded under. If the encoder and the
decoder compute them with float arithmetic on different machines (another CPU, a GPU, another
thread count), one ULP can pick another table and the rest of the stream decodes to garbage
(CompressAI #279, DCVC #150, encodec #95). So at inference these networks run on integers:

- weights are rounded to ``W * 2**WEIGHT_BITS``, biases to ``b * 2**(ACT_BITS + WEIGHT_BITS)``;
- activations are integers holding ``a * 2**ACT_BITS``;
- each layer computes ``acc = conv(a, W) + b`` exactly, then ``a' = floor(acc / 2**WEIGHT_BITS)``
  and ``ReLU``;
- an inverse GDN (the synthesis transforms) computes ``norm = beta + gamma . floor(a^2)`` on
  integers, its square root as ``floor(sqrt(n))`` of an integer (IEEE square roots are correctly
  rounded everywhere, so this is the same integer on every machine) and ``floor(a * s)``.

The convolutions run in float64 on the CPU, where every product and partial sum of these integers
is exact as long as it stays below 2**53 — checked before each layer from the largest input and
the largest row of absolute weights — so the result is the same integer in any summation order,
on any machine and thread count. Nothing here uses Winograd or FFT convolutions (PyTorch's CPU
float64 convolutions are im2col + GEMM).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aecore.layers import GDN, MaskedConv

__all__ = ["ACT_BITS", "WEIGHT_BITS", "IntegerNet"]

ACT_BITS = 12
WEIGHT_BITS = 14
#: fraction bits of an inverse GDN's norm and of its square root
NORM_BITS = 16
ROOT_BITS = 20
_EXACT = 2.0**52
_RANGE = ("latent side information out of the integer network's exact range; "
          "the input is outside what this model handles")

_FORWARD = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.ConvTranspose1d: F.conv_transpose1d,
            nn.ConvTranspose2d: F.conv_transpose2d}


class _Layer:
    def __init__(self, module: nn.Module) -> None:
        conv = module.conv if isinstance(module, MaskedConv) else module
        weight = module.weight if isinstance(module, MaskedConv) else conv.weight
        self.fn = _FORWARD[type(conv)]
        self.kwargs = {"stride": conv.stride, "padding": conv.padding}
        if isinstance(conv, nn.ConvTranspose1d | nn.ConvTranspose2d):
            self.kwargs["output_padding"] = conv.output_padding
        w = weight.detach().to("cpu", torch.float64)
        self.weight = torch.round(w * 2.0**WEIGHT_BITS)
        bias = conv.bias.detach().to("cpu", torch.float64) if conv.bias is not None else torch.zeros(w.shape[0])
        self.bias = torch.round(bias * 2.0 ** (ACT_BITS + WEIGHT_BITS))
        # Largest sum of |w| feeding one output (transposed convs: taps per output position
        # are at most the whole kernel, so the same bound holds).
        out_dim = 1 if isinstance(conv, nn.ConvTranspose1d | nn.ConvTranspose2d) else 0
        dims = [d for d in range(self.weight.dim()) if d != out_dim]
        self.l1 = float(self.weight.abs().sum(dim=dims).max())
        self.max_bias = float(self.bias.abs().max())
        self.shape = (1, -1) + (1,) * (w.dim() - 2)

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        bound = float(a.abs().max()) * self.l1 + self.max_bias if a.numel() else 0.0
        if bound >= _EXACT:
            raise ValueError(_RANGE)
        acc = self.fn(a, self.weight, None, **self.kwargs) + self.bias.view(self.shape)
        return torch.floor(acc * 2.0**-WEIGHT_BITS)


class _InverseGDN:
    """``a * sqrt(beta + gamma . a^2)`` over the channel axis, in fixed point."""

    def __init__(self, module: GDN) -> None:
        beta, gamma = (v.detach().to("cpu", torch.float64) for v in module.effective())
        self.gamma = torch.round(gamma * 2.0**WEIGHT_BITS)
        self.beta = torch.round(beta * 2.0**NORM_BITS)
        self.l1 = float(self.gamma.abs().sum(dim=1).max())

    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        if not a.numel():
            return a
        top = float(a.abs().max())
        squares = torch.floor(a * a * 2.0 ** (NORM_BITS - 2 * ACT_BITS))  # a*a exact below 2**26
        if top >= 2.0**26 or float(squares.max()) * self.l1 >= _EXACT:
            raise ValueError(_RANGE)
        acc = torch.einsum("ij,bj...->bi...", self.gamma, squares)
        norm = torch.floor(acc * 2.0**-WEIGHT_BITS) + self.beta.view((1, -1) + (1,) * (a.dim() - 2))
        root = torch.floor(torch.sqrt(norm * 2.0 ** (2 * ROOT_BITS - NORM_BITS)))
        if top * float(root.max()) >= _EXACT:
            raise ValueError(_RANGE)
        return torch.floor(a * root * 2.0**-ROOT_BITS)


class IntegerNet:
    """The integer twin of a float ``nn.Sequential`` of convolutions, ReLUs and inverse GDNs.

    ``__call__`` takes and returns integer-valued float64 CPU tensors in fixed point
    (``ACT_BITS`` fraction bits)."""

    def __init__(self, net: nn.Sequential) -> None:
        self.steps: list = []
        for module in net:
            if isinstance(module, nn.ReLU):
                self.steps.append(torch.relu)
            elif isinstance(module, MaskedConv | nn.Conv1d | nn.Conv2d | nn.ConvTranspose1d | nn.ConvTranspose2d):
                self.steps.append(_Layer(module))
            elif isinstance(module, GDN) and module.inverse:
                self.steps.append(_InverseGDN(module))
            else:
                raise TypeError(f"{type(module).__name__} has no integer form "
                                "(convolutions, ReLU and inverse GDN only)")

    @torch.no_grad()
    def __call__(self, a: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            a = step(a)
        return a


def to_fixed(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Integers (or values already on the grid) -> fixed point, float64 CPU."""
    return torch.as_tensor(np.asarray(x), dtype=torch.float64) * 2.0**ACT_BITS
