"""The autoencoder contract shared by every model (CompressAI notation).

    x --g_a--> y --Q--> y_hat --g_s--> x_hat

``Q`` is rounding at inference; during training it is replaced by additive uniform
noise U(-1/2, 1/2), the differentiable proxy of Ballé et al. (ICLR 2017).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from aecore.codecs import ExactCoder, FactorizedCategoricalCodec, LaplaceExactCoder, SoftmaxExactCoder
from aecore.entropy_models import FactorizedLaplacePrior
from aecore.errors import UnknownNameError
from aecore.latent_codecs.integer import ACT_BITS, IntegerNet

__all__ = ["ConvAutoEncoder"]


class ConvAutoEncoder(nn.Module):
    """Base class: subclasses build ``g_a`` and ``g_s``; presets live in ``PRESETS``."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: total down-sampling factor of ``g_a`` along each spatial dimension
    stride: int
    latent_channels: int
    #: spatial size of the training crops and of the fixed-size query latent
    native_size: int
    #: what ``distortion`` measures: "mse" (signals in [0, 1]) or "bits" (cross-entropy)
    distortion_unit: ClassVar[str] = "mse"
    #: lossless coding: models that predict a categorical over the 256 values of each position
    #: (text bytes) code under it through ``probability_blocks``; the others under a Laplace
    #: around x_hat with a scale fitted per block (``aecore.codecs.LaplaceResidualCodec``)
    categorical_residual: ClassVar[bool] = False
    #: the spec's defaults for training this model: the rate weight ``lmbda`` (loss =
    #: distortion + lmbda * bits per element) and Adam's learning rate
    default_lmbda: ClassVar[float] = 0.01
    default_learning_rate: ClassVar[float] = 2e-3
    #: the size preset a train job uses when its spec names none
    default_preset: ClassVar[str] = "tiny"
    #: positions each output of g_a / g_s depends on around it, in input positions: inputs larger
    #: than ``tile`` are transformed in tiles with this much context (``aecore.tiling``);
    #: 0: never tiled
    receptive_margin: ClassVar[int] = 0
    tile: ClassVar[int] = 768
    #: latents coded under a per-channel table fitted to a histogram of round(y) after training
    #: (``fit_codec``); models with their own latent codec set this False and override
    #: ``update_tables`` / ``compress_latent`` / ``decompress_latent``
    histogram_prior: ClassVar[bool] = True
    #: g_s runs at inference as an integer network (``exact_synthesis``): its output, and so a
    #: lossy restore, is the same bytes on any machine, thread count or device
    integer_synthesis: ClassVar[bool] = False
    _exact_synthesis: Any = None
    #: the fitted table of the histogram prior (set by training, or by loading a bundle)
    codec: FactorizedCategoricalCodec | None = None

    def __init__(self, **config: Any) -> None:
        super().__init__()
        self.config = dict(config)
        #: variational encoders output (mu, log sigma^2) and sample y in training
        self.variational = bool(config.get("variational", False))

    def _finish(self) -> None:
        """Subclasses call this after building ``analysis``/``synthesis``."""
        self.prior = FactorizedLaplacePrior(self.latent_channels)

    @property
    def analysis_channels(self) -> int:
        return self.latent_channels * (2 if self.variational else 1)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> ConvAutoEncoder:
        if preset not in cls.PRESETS:
            raise UnknownNameError(f"unknown size preset {preset!r} for {cls.__name__} (known: {', '.join(cls.PRESETS)})")
        return cls(**{**cls.PRESETS[preset], **overrides})

    #: leading ``analysis`` layers that only embed discrete input (text bytes) into a
    #: continuous tensor; the contractive penalty differentiates g_a after them
    input_layers: ClassVar[int] = 0

    def g_a(self, x: torch.Tensor) -> torch.Tensor:
        """The latent y (the posterior mean for a variational encoder)."""
        return self.encode_embedded(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.analysis[: self.input_layers](x) if self.input_layers else x

    def encode_embedded(self, e: torch.Tensor) -> torch.Tensor:
        h = self.analysis[self.input_layers :](e) if self.input_layers else self.analysis(e)
        return h[:, : self.latent_channels] if self.variational else h

    def g_s(self, y_hat: torch.Tensor) -> torch.Tensor:
        return self.synthesis(y_hat)

    def train(self, mode: bool = True) -> ConvAutoEncoder:
        self._exact_synthesis = None  # weights may change: the integer twin is rebuilt on next use
        return super().train(mode)

    def exact_synthesis(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """g_s on integers (``aecore.latent_codecs.integer``), float in and float32 out on the CPU,
        or None where this model's synthesis is float only (``integer_synthesis``). Its output
        depends on ``y_hat`` alone, not on the machine, the thread count or how the input is tiled."""
        if not self.integer_synthesis:
            return None
        if self._exact_synthesis is None:
            net = IntegerNet(self.synthesis)

            def run(y_hat: torch.Tensor) -> torch.Tensor:
                a = torch.round(y_hat.to("cpu", torch.float64) * 2.0**ACT_BITS)
                return (net(a) * 2.0**-ACT_BITS).float()

            self._exact_synthesis = run
        return self._exact_synthesis

    def quantize(self, y: torch.Tensor) -> torch.Tensor:
        if self.training:
            return y + torch.empty_like(y).uniform_(-0.5, 0.5)
        return torch.round(y)

    def sample_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """g_a's output as the latent ``y`` (for variational models a reparametrized sample while
        training, the mean otherwise) and the terms the regularizers read (``mu``, ``logvar``)."""
        h = self.analysis(x)
        if not self.variational:
            return h, {}
        mu, logvar = h[:, : self.latent_channels], h[:, self.latent_channels :].clamp(-10.0, 10.0)
        y = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return y, {"mu": mu, "logvar": logvar}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y, out = self.sample_latent(x)
        y_hat = self.quantize(y)
        out.update(x_hat=self.g_s(y_hat), y=y, y_hat=y_hat, bits=self.prior.bits(y_hat))
        return out

    def distortion(self, x: torch.Tensor, out: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared error; models of discrete data override this (e.g. cross-entropy)."""
        return torch.mean((out["x_hat"] - x) ** 2)

    @staticmethod
    def elements(x: torch.Tensor) -> float:
        """What rates are counted per: positions (pixels, samples, bytes) of the batch."""
        return float(x.numel() // x.shape[1])

    def latent_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        return (self.latent_channels, *(-(-s // self.stride) for s in spatial))

    @property
    def patch_size(self) -> int:
        """Side of the training crops (also what the query latent is computed at, by default)."""
        return int(self.config.get("patch_size") or self.native_size)

    # -- latent coding ----------------------------------------------------------------------

    def update_tables(self) -> None:
        """Make the coder's tables after training (the histogram prior is fitted by the trainer)."""

    def compress_latent(self, y: torch.Tensor) -> tuple[bytes, torch.Tensor]:
        """``y [C, *positions]`` from ``g_a`` -> (bytes, the ``y_hat`` the decoder will see)."""
        y_hat = torch.round(y).cpu()
        return self._codec().compress(y_hat.numpy()), y_hat

    def decompress_latent(self, data: bytes, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(self._codec().decompress(data, shape))

    def _codec(self) -> FactorizedCategoricalCodec:
        if self.codec is None:
            raise RuntimeError(f"{type(self).__name__} has no fitted latent prior; train it first")
        return self.codec

    @property
    def codec_name(self) -> str:
        """What codes the latents (recorded in dataset metadata)."""
        return FactorizedCategoricalCodec.name

    def codec_state(self) -> dict[str, Any] | None:
        return self.codec.state() if self.codec is not None else None

    def load_codec_state(self, state: dict[str, Any] | None) -> None:
        self.codec = FactorizedCategoricalCodec.from_state(state) if state else None

    #: decode restores only exact values (no lossy reconstruction exists)
    lossless_only: ClassVar[bool] = False

    def exact_coder(self, bits: int) -> ExactCoder:
        """What codes a piece's exact values in lossless mode: pixels and PCM (and anything over
        8 bits) under a Laplace around the prediction; bytes under the model's softmax."""
        if bits > 8 or not self.categorical_residual:
            return LaplaceExactCoder(bits)
        return SoftmaxExactCoder(self)

    #: whether ``fit_classic`` learns anything (trainers skip the pass otherwise)
    fits_classic: ClassVar[bool] = False

    def fit_classic(self, samples: list[bytes]) -> None:
        """After training: fit what the model's classic fallback needs from the collection (the
        causal text model trains a zstd dictionary); nothing by default."""

    def primer(self) -> Any:
        """The primer of the context-mixing coder (``aecore.archive.cm2.Primer``) this model
        fitted on its collection, or None: only text models have one."""
        return None

    def uniform_prior(self, support: int = 48) -> ConvAutoEncoder:
        """Code latents under a uniform table (an untrained model); returns the model."""
        self.codec = FactorizedCategoricalCodec(self.latent_channels, support)
        return self

    def fit_codec(self, histogram: np.ndarray, support: int) -> None:
        self.codec = FactorizedCategoricalCodec.from_histogram(histogram, support)
