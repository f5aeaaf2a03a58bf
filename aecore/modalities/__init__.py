"""Modalities: bytes of one file <-> model tensors. Importing this fills the registry."""

from aecore.modalities.audio import AudioModality
from aecore.modalities.base import Modality, Sample, UnreadableInput
from aecore.modalities.image import ImageModality
from aecore.modalities.text import TextModality
from aecore.registry import MODALITIES, lookup

__all__ = ["AudioModality", "ImageModality", "TextModality", "Modality", "Sample", "UnreadableInput", "get_modality"]


def get_modality(name: str) -> Modality:
    return lookup(MODALITIES, name, "modality")()
