"""Text: any bytes (UTF-8 or not), any length, restored byte-exact by default (lossless)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from aecore.modalities.base import Modality, Sample
from aecore.registry import register_modality

__all__ = ["TextModality"]

_INFO = struct.Struct("<Q")  # length in bytes


@register_modality("text")
class TextModality(Modality):
    name = "text"
    extensions = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".log", ".xml", ".html", ".py", ".yaml",
                  ".yml", ".bin")
    default_model = "text-byte"
    output_suffix = ".txt"
    channels = 1
    spatial_dims = 1
    lossless_default = True

    def load(self, data: bytes) -> Sample:
        # Any byte string is valid input: invalid UTF-8 is kept as is, never "fixed".
        x = np.frombuffer(data, dtype=np.uint8).astype(np.float32)[None] / 255.0
        return Sample(x=x, info={"shape": (len(data),)})

    def training_patches(self, sample: Sample, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
        x = sample.x
        if x.shape[1] < size:
            x = np.pad(x, ((0, 0), (0, size - x.shape[1])))
        starts = rng.integers(0, x.shape[1] - size + 1, size=count)
        return np.stack([x[:, s : s + size] for s in starts]).astype(np.float32)

    def thumbnail(self, sample: Sample, size: int) -> np.ndarray:
        x = sample.x[:, :size]
        return np.pad(x, ((0, 0), (0, size - x.shape[1])))

    def pad(self, sample: Sample, multiple: int) -> np.ndarray:
        n = sample.x.shape[1]
        return np.pad(sample.x, ((0, 0), (0, max(multiple, -(-n // multiple) * multiple) - n)))

    def extent(self, info: dict[str, Any]) -> tuple[int, ...]:
        return (int(info["shape"][0]),)

    def pack_info(self, info: dict[str, Any]) -> bytes:
        return _INFO.pack(int(info["shape"][0]))

    def unpack_info(self, data: bytes) -> tuple[dict[str, Any], int]:
        (n,) = _INFO.unpack_from(data)
        return {"shape": (n,)}, _INFO.size

    def symbols(self, x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.rint(x[0, : info["shape"][0]] * 255.0).astype(np.int32)

    def from_symbols(self, symbols: np.ndarray, info: dict[str, Any]) -> bytes:
        return symbols.astype(np.uint8).tobytes()

    def restore(self, x_hat: np.ndarray, info: dict[str, Any]) -> bytes:
        # Lossy restore of a byte model: the most likely byte at each position.
        n = self.extent(info)[0]
        return x_hat[:, :n].argmax(axis=0).astype(np.uint8).tobytes()

    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        truth = np.rint(x[0] * 255.0).astype(np.int32)
        exact = float(np.array_equal(truth, x_hat.argmax(axis=0))) if x_hat.shape[0] == 256 else float(np.array_equal(x, x_hat))
        return {"exact": exact}

    def rate_unit(self, info: dict[str, Any]) -> tuple[str, float]:
        return "bits_per_byte", float(max(1, info["shape"][0]))
