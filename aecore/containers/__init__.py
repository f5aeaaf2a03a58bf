"""File containers rebuilt byte for byte from exact sample values plus a small recipe.

Lossless mode restores *files*, not just samples: a PNG's chunks and deflate stream, a WAV's
header chunks, are part of what a user archived. A container splits a file into the exact values
the model codes (pixels, PCM samples) and a recipe of everything else (a few dozen bytes for
files written by zlib / libsndfile), and rebuilds the identical bytes from the two. Importing
this fills the registry.
"""

from aecore.containers.base import CONTAINERS, Container, Exact, get_container
from aecore.containers.png import PngContainer
from aecore.containers.wav import WavContainer

__all__ = ["CONTAINERS", "Container", "Exact", "PngContainer", "WavContainer", "get_container"]
