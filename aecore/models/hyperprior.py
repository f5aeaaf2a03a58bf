"""Image codecs of the hyperprior family: GDN transforms around the mean-scale hyperprior latent
codec (Minnen et al. 2018, CompressAI's ``mbt2018-mean``), optionally with the checkerboard
context (He et al. 2021), and variable rate through gain units (Cui et al., "Asymmetric gained
deep image compression with continuous rate adaptation", CVPR 2021).

::

    x ─g_a─> y ─× gain_q─> y_q ─[hyperprior latent codec]─> y_q_hat ─× inverse_gain_q─> ─g_s─> x_hat

    g_a: conv5/2 GDN conv5/2 GDN conv5/2 GDN conv5/2         (N, N, N, M channels)
    g_s: deconv5/2 IGDN deconv5/2 IGDN deconv5/2 IGDN deconv5/2

One model serves every rate point: ``rate_point`` q (1 .. len(lambdas), fractional values
interpolate the gains geometrically) scales the latent before quantization. Training draws a
rate point per sample and weights its distortion by that rate point's ``lambda`` (CompressAI's
convention: ``L = lambda * 255^2 * MSE + bpp``).
"""

from __future__ import annotations

import math
import struct
from typing import Any, ClassVar

import torch
from torch import nn

from aecore.latent_codecs import HyperpriorLatentCodec
from aecore.layers import GDN, conv, deconv
from aecore.models.base import ConvAutoEncoder
from aecore.registry import register_model

__all__ = ["HyperpriorAE", "ImageHyperpriorAE", "LAMBDAS"]

_HEAD = struct.Struct("<HB")
_LEN = struct.Struct("<I")

#: CompressAI's MSE rate points 1-5 (about 0.12 to 0.7 bits per pixel on Kodak)
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250)


class HyperpriorAE(ConvAutoEncoder):
    """What every model of the family shares, whatever its dimensionality: the rate points (gain
    units), the mean-scale hyperprior latent codec, the rate–distortion loss and the payload of
    the latents. Subclasses build ``analysis`` / ``synthesis`` and call :meth:`_setup_coding`."""

    #: the spec's ``lmbda`` multiplies the rate of a loss already weighted by ``lambdas``
    default_lmbda: ClassVar[float] = 1.0
    default_learning_rate: ClassVar[float] = 1e-4
    default_preset: ClassVar[str] = "small"
    histogram_prior: ClassVar[bool] = False
    integer_synthesis: ClassVar[bool] = True
    dims: ClassVar[int] = 2

    def _setup_coding(self, latent_channels: int, hyper_channels: int, checkerboard: bool,
                      lambdas: tuple[float, ...], rate_point: float | None) -> None:
        m = latent_channels
        self.latent_channels = m
        self.lambdas = tuple(float(v) for v in lambdas)
        #: the rate point compress uses (1 .. len(lambdas)); the middle one unless set
        self.rate_point = float(rate_point) if rate_point is not None else (len(self.lambdas) + 1) / 2
        self.latent_codec = HyperpriorLatentCodec(m, hyper_channels, dims=self.dims, checkerboard=checkerboard)
        # Gains start where a uniform quantizer's step would be for each lambda (step ~ 1/sqrt(lambda),
        # relative to the middle rate point): learning them from 1 takes thousands of steps.
        lam = torch.tensor(self.lambdas)
        start = 0.5 * torch.log(lam / lam[len(lam) // 2]).unsqueeze(1).expand(len(lam), m)
        self.log_gain = nn.Parameter(start.clone())
        self.log_inverse_gain = nn.Parameter(-start.clone())

    # -- rate points --------------------------------------------------------------------------

    def _gains(self, quality: torch.Tensor, log_gain: torch.Tensor) -> torch.Tensor:
        """Gains ``[B, M]`` at qualities ``[B]`` (1-based; fractions interpolate geometrically)."""
        t = torch.clamp(quality - 1.0, 0.0, len(self.lambdas) - 1.0)
        low = torch.clamp(torch.floor(t).long(), max=len(self.lambdas) - 2) if len(self.lambdas) > 1 else t.long()
        frac = (t - low).unsqueeze(1)
        high = torch.clamp(low + 1, max=len(self.lambdas) - 1)
        return torch.exp(log_gain[low] * (1 - frac) + log_gain[high] * frac)

    def _view(self, g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return g.view(*g.shape, *([1] * (like.dim() - 2)))

    def _qualities(self, batch: int, device: torch.device) -> torch.Tensor:
        if self.training:
            return torch.randint(1, len(self.lambdas) + 1, (batch,), device=device).float()
        return torch.full((batch,), self.rate_point, device=device)

    def rd_weight(self, quality: torch.Tensor) -> torch.Tensor:
        """``lambda * 255^2`` at each quality (log-interpolated between rate points)."""
        logs = torch.log(torch.tensor(self.lambdas, device=quality.device))
        t = torch.clamp(quality - 1.0, 0.0, len(self.lambdas) - 1.0)
        low = torch.clamp(torch.floor(t).long(), max=max(len(self.lambdas) - 2, 0))
        high = torch.clamp(low + 1, max=len(self.lambdas) - 1)
        return torch.exp(logs[low] + (logs[high] - logs[low]) * (t - low)) * 255.0**2

    def warm_start(self, other: HyperpriorAE) -> None:
        """Take ``other``'s weights (same architecture), keeping this model's rate points: each
        rate point's gains move by the step change its new lambda asks for (``0.5 log(new/old)``,
        as at initialization), so a warm start at other lambdas begins near its new rates."""
        state = {k: v for k, v in other.state_dict().items() if not k.endswith((".pmf", ".radius"))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.endswith((".pmf", ".radius")) for k in missing):
            raise ValueError(f"cannot warm-start from another architecture: missing {missing}, unexpected {unexpected}")
        if len(other.lambdas) == len(self.lambdas) and other.lambdas != self.lambdas:
            shift = 0.5 * torch.log(torch.tensor(self.lambdas) / torch.tensor(other.lambdas)).unsqueeze(1)
            with torch.no_grad():
                self.log_gain += shift
                self.log_inverse_gain -= shift

    # -- training -----------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y, out = self.sample_latent(x)
        quality = self._qualities(x.shape[0], x.device)
        gain = self._view(self._gains(quality, self.log_gain), y)
        coded = self.latent_codec(y * gain)
        y_hat = coded["y_hat"]
        inverse = self._view(self._gains(quality, self.log_inverse_gain), y)
        bits = sum(-torch.log2(lik).flatten(1).sum(1) for lik in coded["likelihoods"].values())
        out.update(x_hat=self.g_s(y_hat * inverse), y=y, y_hat=y_hat, bits=bits, rd_weight=self.rd_weight(quality))
        return out

    def distortion(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Plain MSE; in training each sample's MSE weighted by its rate point's ``lambda * 255^2``."""
        mse = torch.mean((out["x_hat"] - x) ** 2, dim=tuple(range(1, x.dim())))
        if self.training and "rd_weight" in out:
            return torch.mean(out["rd_weight"] * mse)
        return mse.mean()

    # -- coding -------------------------------------------------------------------------------

    @property
    def codec_name(self) -> str:
        return "mean-scale-hyperprior" + ("+checkerboard" if self.latent_codec.checkerboard else "")

    def update_tables(self) -> None:
        self.latent_codec.update_tables()

    @torch.no_grad()
    def compress_latent(self, y: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """``y [M, *positions]`` from ``g_a`` -> ``u16 rate_point * 256 | u8 k | k x (u32 n | n bytes)``
        and the ``y_hat`` the decoder will see (in g_s's scale)."""
        code = max(0, min(0xFFFF, round(self.rate_point * 256)))
        q = torch.tensor([code / 256])
        gain = self._gains(q, self.log_gain.detach().cpu())[0].view(-1, *([1] * (y.dim() - 1)))
        strings, y_q_hat = self.latent_codec.compress(y.detach().cpu().float() * gain)
        blob = _HEAD.pack(code, len(strings)) + b"".join(_LEN.pack(len(s)) + s for s in strings)
        return blob, self._inverse(q, y_q_hat)

    @torch.no_grad()
    def decompress_latent(self, data: bytes, shape: tuple[int, ...]) -> torch.Tensor:
        code, count = _HEAD.unpack_from(data)
        pos, strings = _HEAD.size, []
        for _ in range(count):
            (n,) = _LEN.unpack_from(data, pos)
            strings.append(data[pos + _LEN.size : pos + _LEN.size + n])
            pos += _LEN.size + n
        q = torch.tensor([code / 256])
        return self._inverse(q, self.latent_codec.decompress(strings, shape))

    def _inverse(self, q: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``like * inverse gain`` as the decoder computes it on any machine: the gains in float64
        snapped to a 2**-16 grid (one libm's last-bit difference in ``exp`` does not move them), the
        product in float64 (exact), rounded once to float32."""
        gain = self._gains(q.double(), self.log_inverse_gain.detach().cpu().double())[0]
        gain = torch.round(gain * 2.0**16) * 2.0**-16
        return (like.double() * gain.view(-1, *([1] * (like.dim() - 1)))).float()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


@register_model("image-hyperprior")
class ImageHyperpriorAE(HyperpriorAE):
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"channels": 24, "latent_channels": 32, "hyper_channels": 24, "patch_size": 64},
        "small": {"channels": 96, "latent_channels": 128, "hyper_channels": 96, "checkerboard": True},
        "base": {"channels": 128, "latent_channels": 192, "hyper_channels": 128, "checkerboard": True},
    }
    # four 5x5 stride-2 layers see 61 pixels (3.8 latents); 64 keeps tiles on the latent grid
    receptive_margin: ClassVar[int] = 64

    def __init__(self, channels: int = 24, latent_channels: int = 32, hyper_channels: int = 24, native_size: int = 32,
                 patch_size: int = 128, checkerboard: bool = False, lambdas: tuple[float, ...] = LAMBDAS,
                 rate_point: float | None = None, in_channels: int = 3, variational: bool = False) -> None:
        super().__init__(channels=channels, latent_channels=latent_channels, hyper_channels=hyper_channels,
                         native_size=native_size, patch_size=patch_size, checkerboard=checkerboard,
                         lambdas=list(lambdas), rate_point=rate_point, in_channels=in_channels, variational=variational)
        n, m = channels, latent_channels
        self.latent_channels = m
        self.native_size = native_size
        self.analysis = nn.Sequential(
            conv(in_channels, n), GDN(n), conv(n, n), GDN(n), conv(n, n), GDN(n), conv(n, self.analysis_channels),
        )
        self.synthesis = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True), deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True), deconv(n, in_channels),
        )
        self._setup_coding(m, hyper_channels, checkerboard, tuple(lambdas), rate_point)
        #: padding multiple: g_a's down-sampling (the hyper-latent covers y rounded up)
        self.stride = 16

def bits_per_pixel(bits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return bits / math.prod(x.shape[2:])
