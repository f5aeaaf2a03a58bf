"""Coders: the factorized latent codec, and the coders of exact values in lossless mode."""

from aecore.codecs.exact import ExactCoder, ExactPiece, LaplaceExactCoder, SoftmaxExactCoder, one_thread
from aecore.codecs.factorized import FactorizedCategoricalCodec
from aecore.codecs.laplace import LaplaceResidualCodec

__all__ = ["ExactCoder", "ExactPiece", "FactorizedCategoricalCodec", "LaplaceExactCoder", "LaplaceResidualCodec",
           "SoftmaxExactCoder", "one_thread"]
