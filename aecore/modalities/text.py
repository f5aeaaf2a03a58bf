"""Text: any bytes (UTF-8 or not), any length, restored byte-exact by default (lossless)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from aecore.containers import Exact
from aecore.modalities.base import Sample
from aecore.modalities.info import Info
from aecore.modalities.sequence import SequenceModality
from aecore.registry import register_modality

__all__ = ["TextInfo", "TextModality"]

_INFO = struct.Struct("<Q")  # length in bytes


@dataclass(frozen=True, eq=False)
class TextInfo(Info):
    """A text: ``shape`` is (length in bytes,)."""

    @property
    def positions(self) -> tuple[int, ...]:
        return (int(self.shape[0]),)

    def rate_unit(self) -> tuple[str, float]:
        return "bits_per_byte", float(max(1, self.shape[0]))

    def pack(self) -> bytes:
        return _INFO.pack(int(self.shape[0]))

    @classmethod
    def unpack(cls, data: bytes, version: int) -> tuple[TextInfo, int]:
        (n,) = _INFO.unpack_from(data)
        return cls(shape=(n,)), _INFO.size


@register_modality("text")
class TextModality(SequenceModality):
    name = "text"
    gate_metric = ("bits_per_byte", -1)  # lossless: quality is the rate
    rate_is_quality = True
    # what a text collection is made of: prose, data, logs, markup and source code (any byte string
    # codes; a file named otherwise joins with `modality: auto`, which lists every file)
    extensions = (".txt", ".md", ".rst", ".tex", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".log", ".xml",
                  ".html", ".htm", ".css", ".svg", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".conf", ".sql", ".srt",
                  ".po", ".py", ".pyi", ".c", ".h", ".cc", ".cpp", ".hpp", ".java", ".js", ".ts", ".go", ".rs",
                  ".rb", ".lua", ".pl", ".sh", ".bin")
    default_model = "text-causal"
    output_suffix = ".txt"
    lossless_default = True
    lossy = False
    info_type = TextInfo

    def load(self, data: bytes) -> Sample:
        # Any byte string is valid input: invalid UTF-8 is kept as is, never "fixed".
        x = np.frombuffer(data, dtype=np.uint8).astype(np.float32)[None] / 255.0
        return Sample(x=x, info=TextInfo(shape=(len(data),)))

    def exact(self, data: bytes, sample: Sample) -> Exact:
        return Exact()  # the bytes are the values: nothing else to rebuild

    def symbols(self, x: np.ndarray, info: Info) -> np.ndarray:
        return _bytes_of(x).astype(np.int32)

    def from_symbols(self, symbols: np.ndarray, info: Info) -> bytes:
        return symbols.astype(np.uint8).tobytes()

    def restore(self, x_hat: np.ndarray, info: Info) -> bytes:
        # Lossy restore of a byte model: the most likely byte at each position.
        n = info.positions[0]
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
        n = min(600, int(sample.info.shape[0]))
        original = _bytes_of(sample.x[:, :n]).tobytes()
        restored = (x_hat[:, :n].argmax(axis=0).astype(np.uint8).tobytes() if x_hat.shape[0] == 256
                    else _bytes_of(x_hat[:, :n]).tobytes())
        return {"kind": "text", "panels": [("original", original.decode("utf-8", "replace")),
                                           ("restored", restored.decode("utf-8", "replace"))]}


def _bytes_of(x: np.ndarray) -> np.ndarray:
    """The bytes (uint8) a text tensor ``[1, L]`` in [0, 1] holds."""
    return np.rint(x[0] * 255.0).astype(np.uint8)
