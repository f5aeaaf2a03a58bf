"""Convolutional audio autoencoder on mono 16 kHz signals in [-1, 1].

g_a: Conv1d stride 4 (kernel 9) x k down to ``latent_channels`` at 1/4^k of the sample rate;
g_s mirrors it with transposed convolutions and ends in tanh.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from aecore.models.base import ConvAutoEncoder
from aecore.registry import register_model

__all__ = ["AudioConvAE"]


@register_model("audio-conv")
class AudioConvAE(ConvAutoEncoder):
    PRESETS = {
        "tiny": {"channels": (32, 48, 64), "latent_channels": 16, "native_size": 4096, "chunk": 16000 * 30},
        "base": {"channels": (64, 128, 192, 256), "latent_channels": 64, "native_size": 16384, "chunk": 16000 * 60},
    }

    def __init__(self, channels: Sequence[int] = (32, 48, 64), latent_channels: int = 16, native_size: int = 4096,
                 chunk: int = 16000 * 30, variational: bool = False) -> None:
        super().__init__(channels=tuple(channels), latent_channels=latent_channels, native_size=native_size,
                         chunk=chunk, variational=variational)
        self.stride = 4 ** len(channels)
        self.latent_channels = latent_channels
        self.native_size = native_size
        self.chunk = chunk
        down: list[nn.Module] = []
        widths = [1, *channels]
        for c_in, c_out in zip(widths, widths[1:]):
            down += [nn.Conv1d(c_in, c_out, 9, stride=4, padding=4), nn.GELU()]
        down += [nn.Conv1d(channels[-1], self.analysis_channels, 3, padding=1)]
        self.analysis = nn.Sequential(*down)
        up: list[nn.Module] = [nn.Conv1d(latent_channels, channels[-1], 3, padding=1), nn.GELU()]
        rev = list(reversed(widths))
        for c_in, c_out in zip(rev, rev[1:]):
            up += [nn.ConvTranspose1d(c_in, c_out, 8, stride=4, padding=2)]
            up += [nn.GELU()] if c_out != 1 else [nn.Tanh()]
        self.synthesis = nn.Sequential(*up)
        self._finish()
