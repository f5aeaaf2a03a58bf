"""Latent codecs: quantized latents <-> entropy-coded bitstreams; and the wide residual coder."""

from aecore.codecs.factorized import FactorizedCategoricalCodec
from aecore.codecs.laplace import LaplaceResidualCodec

__all__ = ["FactorizedCategoricalCodec", "LaplaceResidualCodec"]
