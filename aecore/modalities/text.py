"""Text: any bytes (UTF-8 or not), any length, restored byte-exact by default (lossless)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from aecore.modalities.base import Sample
from aecore.modalities.sequence import SequenceModality
from aecore.registry import register_modality

__all__ = ["TextModality"]

_INFO = struct.Struct("<Q")  # length in bytes


@register_modality("text")
class TextModality(SequenceModality):
    name = "text"
    gate_metric = ("bits_per_byte", -1)  # lossless: quality is the rate
    extensions = (".txt", ".md", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".log", ".xml", ".html", ".py", ".yaml",
                  ".yml", ".bin")
    default_model = "text-causal"
    output_suffix = ".txt"
    lossless_default = True

    def load(self, data: bytes) -> Sample:
        # Any byte string is valid input: invalid UTF-8 is kept as is, never "fixed".
        x = np.frombuffer(data, dtype=np.uint8).astype(np.float32)[None] / 255.0
        return Sample(x=x, info={"shape": (len(data),)})

    def extent(self, info: dict[str, Any]) -> tuple[int, ...]:
        return (int(info["shape"][0]),)

    def pack_info(self, info: dict[str, Any]) -> bytes:
        return _INFO.pack(int(info["shape"][0]))

    def unpack_info(self, data: bytes, version: int) -> tuple[dict[str, Any], int]:
        (n,) = _INFO.unpack_from(data)
        return {"shape": (n,)}, _INFO.size

    def exact(self, data: bytes, sample: Sample) -> dict[str, Any]:
        return {}  # the bytes are the values: nothing else to rebuild

    def symbols(self, x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return _bytes_of(x).astype(np.int32)

    def from_symbols(self, symbols: np.ndarray, info: dict[str, Any]) -> bytes:
        return symbols.astype(np.uint8).tobytes()

    def restore(self, x_hat: np.ndarray, info: dict[str, Any]) -> bytes:
        # Lossy restore of a byte model: the most likely byte at each position.
        n = self.extent(info)[0]
        return x_hat[:, :n].argmax(axis=0).astype(np.uint8).tobytes()

    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        truth = _bytes_of(x).astype(np.int32)
        exact = float(np.array_equal(truth, x_hat.argmax(axis=0))) if x_hat.shape[0] == 256 else float(np.array_equal(x, x_hat))
        return {"exact": exact}

    def classic_codecs(self, sample: Sample, lossless: bool = False) -> list[tuple[str, bytes, np.ndarray]]:
        import gzip
        import lzma

        data = _bytes_of(sample.x).tobytes()
        out = [("gzip -9", gzip.compress(data, 9), sample.x), ("xz -9", lzma.compress(data, preset=9), sample.x)]
        try:
            import zstandard
        except ImportError:  # the bench extra; the report shows gzip and xz without it
            return out
        return out + [("zstd -19", zstandard.ZstdCompressor(level=19).compress(data), sample.x)]

    def preview(self, sample: Sample, x_hat: np.ndarray, reference: tuple[str, np.ndarray] | None = None
                ) -> dict[str, Any]:
        """Original and restored text (the classic coders are lossless: no third panel)."""
        n = min(600, int(sample.info["shape"][0]))
        original = _bytes_of(sample.x[:, :n]).tobytes()
        restored = (x_hat[:, :n].argmax(axis=0).astype(np.uint8).tobytes() if x_hat.shape[0] == 256
                    else _bytes_of(x_hat[:, :n]).tobytes())
        return {"kind": "text", "panels": [("original", original.decode("utf-8", "replace")),
                                           ("restored", restored.decode("utf-8", "replace"))]}

    def rate_unit(self, info: dict[str, Any]) -> tuple[str, float]:
        return "bits_per_byte", float(max(1, info["shape"][0]))


def _bytes_of(x: np.ndarray) -> np.ndarray:
    """The bytes (uint8) a text tensor ``[1, L]`` in [0, 1] holds."""
    return np.rint(x[0] * 255.0).astype(np.uint8)
