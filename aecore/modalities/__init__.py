"""Modalities: bytes of one file <-> model tensors. Importing this fills the registry."""

from aecore.modalities.audio import AudioInfo, AudioModality
from aecore.modalities.base import Modality, Sample, UnreadableInput
from aecore.modalities.image import ImageInfo, ImageModality
from aecore.modalities.info import Exact, Info
from aecore.modalities.text import TextInfo, TextModality
from aecore.registry import MODALITIES, lookup

__all__ = ["AudioInfo", "AudioModality", "Exact", "ImageInfo", "ImageModality", "Info", "Modality", "Sample",
           "TextInfo", "TextModality", "UnreadableInput", "get_modality"]


def get_modality(name: str) -> Modality:
    return lookup(MODALITIES, name, "modality")()
