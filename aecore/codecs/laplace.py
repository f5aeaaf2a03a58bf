"""Exact integers coded under a discretized Laplace around a prediction, scale sent per block.

Lossless coding of pixels and PCM samples, 8 or 16 bits (a table over every level would be
65,536 entries per 16-bit value; constriction evaluates the Laplace's CDF directly). Each value ``v`` in ``[0, levels)`` is range-coded (constriction's ``QuantizedLaplace``)
under a Laplace centred on the decoder's prediction ``mu``; the scale is the maximum-likelihood
one of each block of ``BLOCK`` values, ``mean |v - mu|``, sent as a 2-byte log2 code (forward
adaptation: loud and quiet passages, flat and busy regions each get their own scale).

Bitstream: ``ceil(n / BLOCK)`` little-endian int16 scale codes, then the range coder's words.
Predictions are snapped to 1/8 of a level, so encoder and decoder agree unless their float
computations differ by more than that; every lossless payload is decoded again at encode time.
"""

from __future__ import annotations

import constriction
import numpy as np

__all__ = ["LaplaceResidualCodec"]

BLOCK = 4096
_STEPS = 16  # scale codes per octave
_MIN_CODE, _MAX_CODE = -40, 16 * 32


def _snap(means: np.ndarray, levels: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(means, np.float64) * 8.0) / 8.0, 0.0, levels - 1.0)


def _scales(codes: np.ndarray, n: int) -> np.ndarray:
    return np.repeat(np.exp2(codes.astype(np.float64) / _STEPS), BLOCK)[:n]


class LaplaceResidualCodec:
    def __init__(self, levels: int) -> None:
        self.levels = levels
        self._model = constriction.stream.model.QuantizedLaplace(0, levels - 1)

    def compress(self, values: np.ndarray, means: np.ndarray) -> bytes:
        values = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.int32)
        mu = _snap(np.asarray(means).reshape(-1), self.levels)
        n = len(values)
        if n == 0:
            return b""
        pad = -n % BLOCK
        err = np.abs(np.pad(values - mu, (0, pad))).reshape(-1, BLOCK)
        counts = np.full(len(err), BLOCK, np.float64)
        counts[-1] = BLOCK - pad
        mad = np.maximum(err.sum(axis=1) / counts, 1e-3)
        codes = np.clip(np.round(np.log2(mad) * _STEPS), _MIN_CODE, _MAX_CODE).astype("<i2")
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(values, self._model, mu, _scales(codes, n))
        return codes.tobytes() + encoder.get_compressed().astype("<u4").tobytes()

    def decompress(self, data: bytes, means: np.ndarray) -> np.ndarray:
        mu = _snap(np.asarray(means).reshape(-1), self.levels)
        n = len(mu)
        if n == 0:
            return np.zeros(0, np.int32)
        blocks = -(-n // BLOCK)
        codes = np.frombuffer(data, "<i2", blocks)
        words = np.frombuffer(data, "<u4", offset=2 * blocks).astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        return decoder.decode(self._model, mu, _scales(codes, n))
