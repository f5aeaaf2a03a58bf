"""Byte-level convolutional autoencoder for text and arbitrary bytes.

g_a: bytes -> embedding (E) -> stride-2 Conv1d x k -> latent (C channels at 1/2^k of the length)
g_s: latent -> ConvTranspose1d x k -> logits over the 256 byte values at every position

The decoder's output is a distribution over bytes, so the distortion is the cross-entropy in
bits per byte, and lossless coding spends exactly that on the residual: the total rate of a
lossless payload is latent bits + cross-entropy bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aecore.models.base import ConvAutoEncoder
from aecore.registry import register_model

__all__ = ["TextByteAE"]


class _Bytes(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 1, L] in [0, 1] -> [N, E, L]
        tokens = torch.round(x[:, 0] * 255.0).long().clamp(0, 255)
        return self.embed(tokens).transpose(1, 2)


@register_model("text-byte")
class TextByteAE(ConvAutoEncoder):
    distortion_unit = "bits"
    input_layers = 1  # the byte embedding
    PRESETS = {
        "tiny": {"channels": (64, 96), "latent_channels": 8, "native_size": 256, "chunk": 16384},
        "base": {"channels": (192, 256, 320), "latent_channels": 32, "native_size": 1024, "chunk": 65536},
    }

    def __init__(self, channels: Sequence[int] = (64, 96), latent_channels: int = 8, native_size: int = 256,
                 chunk: int = 16384, variational: bool = False) -> None:
        super().__init__(channels=tuple(channels), latent_channels=latent_channels, native_size=native_size,
                         chunk=chunk, variational=variational)
        self.stride = 2 ** len(channels)
        self.latent_channels = latent_channels
        self.native_size = native_size
        self.chunk = chunk
        layers: list[nn.Module] = [_Bytes(channels[0])]
        widths = [channels[0], *channels]
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv1d(c_in, c_out, 5, stride=2, padding=2), nn.GELU()]
        layers += [nn.Conv1d(channels[-1], self.analysis_channels, 3, padding=1)]
        self.analysis = nn.Sequential(*layers)
        up: list[nn.Module] = [nn.Conv1d(latent_channels, channels[-1], 3, padding=1), nn.GELU()]
        rev = list(reversed(widths))
        for c_in, c_out in zip(rev, rev[1:]):
            up += [nn.ConvTranspose1d(c_in, c_out, 4, stride=2, padding=1), nn.GELU()]
        up += [nn.Conv1d(channels[0], 256, 1)]
        self.synthesis = nn.Sequential(*up)
        self._finish()

    def distortion(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the true bytes under the decoder, in bits per byte."""
        tokens = torch.round(x[:, 0] * 255.0).long().clamp(0, 255)
        return F.cross_entropy(out["x_hat"], tokens) / math.log(2)

    categorical_residual = True

    def probability_blocks(self, view: torch.Tensor, block: int = 1 << 15):
        """[256, L] logits -> [L, 256] byte probabilities for the residual coder, in blocks."""
        for start in range(0, view.shape[-1], block):
            yield torch.softmax(view[:, start : start + block].double(), dim=0).T
