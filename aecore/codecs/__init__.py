"""Latent codecs: quantized latents <-> entropy-coded bitstreams."""

from aecore.codecs.factorized import FactorizedCategoricalCodec

__all__ = ["FactorizedCategoricalCodec"]
