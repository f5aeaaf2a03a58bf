"""Autoencoder models. Importing this fills the model registry."""

from typing import Any

from aecore.models.audio import AudioConvAE
from aecore.models.audio_hyperprior import AudioHyperpriorAE
from aecore.models.base import ConvAutoEncoder
from aecore.models.hyperprior import ImageHyperpriorAE
from aecore.models.image import ImageConvAE
from aecore.models.text import TextByteAE
from aecore.models.text_causal import TextCausalAE
from aecore.registry import MODELS, lookup

__all__ = ["AudioConvAE", "AudioHyperpriorAE", "ConvAutoEncoder", "ImageConvAE", "ImageHyperpriorAE", "TextByteAE",
           "TextCausalAE", "build_model"]


def build_model(name: str, preset: str | None = None, **config: Any) -> ConvAutoEncoder:
    """A model from the registry, from a size preset and/or explicit config."""
    cls = lookup(MODELS, name, "model")
    return cls.from_preset(preset, **config) if preset else cls(**config)
