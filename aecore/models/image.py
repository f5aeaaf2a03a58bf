"""Convolutional image autoencoder.

g_a: 3 -> c1 -> c2 -> ... -> latent, each a stride-2 5x5 conv (GELU between);
g_s mirrors it with stride-2 transposed convs and ends in a sigmoid (pixels in [0, 1]).
Fully convolutional, so any image size divisible by ``stride`` goes through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from aecore.models.base import ConvAutoEncoder
from aecore.registry import register_model

__all__ = ["ImageConvAE"]


@register_model("image-conv")
class ImageConvAE(ConvAutoEncoder):
    PRESETS = {
        "tiny": {"channels": (32, 48, 64), "latent_channels": 12, "native_size": 32},
        "base": {"channels": (96, 128, 160, 192), "latent_channels": 96, "native_size": 128},
    }

    def __init__(
        self,
        channels: Sequence[int] = (32, 48, 64),
        latent_channels: int = 12,
        native_size: int = 32,
        in_channels: int = 3,
        variational: bool = False,
    ) -> None:
        super().__init__(
            channels=tuple(channels), latent_channels=latent_channels, native_size=native_size, in_channels=in_channels,
            variational=variational,
        )
        self.stride = 2 ** (len(channels))
        self.latent_channels = latent_channels
        self.native_size = native_size
        down: list[nn.Module] = []
        widths = [in_channels, *channels[:-1]]
        for c_in, c_out in zip(widths, channels[:-1]):
            down += [nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.GELU()]
        down += [nn.Conv2d(widths[-1], channels[-1], 5, stride=2, padding=2), nn.GELU()]
        down += [nn.Conv2d(channels[-1], self.analysis_channels, 3, padding=1)]
        self.analysis = nn.Sequential(*down)
        up: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], 3, padding=1), nn.GELU()]
        rev = list(reversed(channels))
        for c_in, c_out in zip(rev, rev[1:]):
            up += [nn.ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1), nn.GELU()]
        up += [nn.ConvTranspose2d(rev[-1], in_channels, 5, stride=2, padding=2, output_padding=1), nn.Sigmoid()]
        self.synthesis = nn.Sequential(*up)
        self._finish()
