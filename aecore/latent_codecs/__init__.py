"""Latent codecs: how a model's latent ``y`` becomes bytes and back (CompressAI's
``latent_codecs``), written for any dimensionality."""

from aecore.latent_codecs.hyperprior import HyperpriorLatentCodec
from aecore.latent_codecs.integer import IntegerNet

__all__ = ["HyperpriorLatentCodec", "IntegerNet"]
