"""The hyperprior family on signals: 1-D GDN transforms around the image codec's mean-scale
hyperprior latent codec (``dims=1``; the checkerboard context as an option), with its gain units
for rate points, its integer synthesis (bit-exact restores on any machine) and its payload.

::

    x [B, 1, T] at 16 kHz ─g_a─> y [B, M, T/320] ─× gain_q─> [hyperprior latent codec] ─× inverse gain─ g_s ─> x_hat

    g_a: conv7/1 GDN (conv2s/s GDN) for s in strides, conv3/1      (N channels, then M)
    g_s: the mirror, with transposed convolutions and inverse GDN

Training loss: MSE weighted per rate point (as the image model) plus a multi-resolution STFT
loss — spectral convergence and log-magnitude distance at three resolutions (Yamamoto et al.
2020, "Parallel WaveGAN"; also SoundStream's reconstruction terms) — so what a listener hears
improves, not only the SNR. ``stft_weight`` scales it against the weighted MSE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from aecore.layers import GDN
from aecore.models.hyperprior import HyperpriorAE
from aecore.registry import register_model

__all__ = ["AUDIO_LAMBDAS", "AudioHyperpriorAE", "stft_loss"]

#: rate points 1-3, aimed at about 6, 12 and 24 kbit/s at 16 kHz (on this small model the rate
#: grows only ~1.25x per 4x lambda: 0.0025/0.01/0.04 gave 3.8/4.7/6.0 kbit/s on speech)
AUDIO_LAMBDAS = (0.005, 0.04, 0.32)
#: (FFT size, hop) of the STFT loss's resolutions at 16 kHz
RESOLUTIONS = ((256, 64), (512, 128), (1024, 256))


def stft_loss(x: torch.Tensor, x_hat: torch.Tensor, resolutions: Sequence[tuple[int, int]] = RESOLUTIONS
              ) -> torch.Tensor:
    """Per-sample spectral convergence + log-magnitude L1 over ``resolutions`` (``[B]``)."""
    total = torch.zeros(x.shape[0], device=x.device)
    a, b = x.reshape(x.shape[0], -1), x_hat.reshape(x.shape[0], -1)
    for n_fft, hop in resolutions:
        if a.shape[-1] < n_fft:
            continue
        window = torch.hann_window(n_fft, device=x.device)
        s = torch.stft(a, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-7)
        s_hat = torch.stft(b, n_fft, hop, window=window, return_complex=True).abs().clamp_min(1e-7)
        convergence = torch.linalg.norm((s - s_hat).flatten(1), dim=1) / torch.linalg.norm(s.flatten(1), dim=1)
        log_mag = torch.mean(torch.abs(torch.log(s) - torch.log(s_hat)).flatten(1), dim=1)
        total = total + convergence + log_mag
    return total / len(resolutions)


@register_model("audio-hyperprior")
class AudioHyperpriorAE(HyperpriorAE):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"channels": 16, "latent_channels": 16, "hyper_channels": 16, "strides": (2, 4, 4),
                 "patch_size": 4096, "native_size": 4096},
        "small": {"channels": 64, "latent_channels": 64, "hyper_channels": 64, "strides": (2, 4, 5, 8),
                  "checkerboard": True},
    }
    dims: ClassVar[int] = 1
    default_learning_rate: ClassVar[float] = 3e-4

    def __init__(self, channels: int = 64, latent_channels: int = 64, hyper_channels: int = 64,
                 strides: Sequence[int] = (2, 4, 5, 8), native_size: int = 16000, patch_size: int = 16000,
                 chunk: int = 16000 * 30, checkerboard: bool = False, lambdas: Sequence[float] = AUDIO_LAMBDAS,
                 rate_point: float | None = None, stft_weight: float = 1e-3, variational: bool = False) -> None:
        super().__init__(channels=channels, latent_channels=latent_channels, hyper_channels=hyper_channels,
                         strides=list(strides), native_size=native_size, patch_size=patch_size, chunk=chunk,
                         checkerboard=checkerboard, lambdas=list(lambdas), rate_point=rate_point,
                         stft_weight=stft_weight, variational=variational)
        n, m = channels, latent_channels
        self.latent_channels, self.native_size, self.chunk = m, native_size, chunk
        self.stft_weight = float(stft_weight)
        down: list[nn.Module] = [nn.Conv1d(1, n, 7, padding=3), GDN(n)]
        for s in strides:
            down += [nn.Conv1d(n, n, 2 * s, stride=s, padding=s // 2 + s % 2), GDN(n)]
        down += [nn.Conv1d(n, self.analysis_channels, 3, padding=1)]
        self.analysis = nn.Sequential(*down)
        up: list[nn.Module] = [nn.Conv1d(m, n, 3, padding=1), GDN(n, inverse=True)]
        for s in reversed(strides):
            up += [nn.ConvTranspose1d(n, n, 2 * s, stride=s, padding=s // 2 + s % 2, output_padding=s % 2),
                   GDN(n, inverse=True)]
        up += [nn.Conv1d(n, 1, 7, padding=3)]
        self.synthesis = nn.Sequential(*up)
        self._setup_coding(m, hyper_channels, checkerboard, tuple(lambdas), rate_point)
        self.stride = math.prod(strides)
        #: samples each output sees around it: tiles of a long signal overlap this much (no seams);
        #: tiles of g_a / g_s span 64 latent frames (4 s at 16 kHz), a multiple of the stride
        self.receptive_margin = 4 * self.stride
        self.tile = 64 * self.stride

    def distortion(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """The rate-point-weighted MSE plus ``stft_weight`` x the multi-resolution STFT loss (also
        weighted by the rate point, so the rate points keep their trade-off)."""
        mse = torch.mean((out["x_hat"] - x) ** 2, dim=tuple(range(1, x.dim())))
        if not (self.training and "rd_weight" in out):
            return mse.mean()
        return torch.mean(out["rd_weight"] * (mse + self.stft_weight * stft_loss(x, out["x_hat"])))
