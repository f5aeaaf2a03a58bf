"""Entropy coding of quantized latents under a per-channel factorized prior.

The prior is a categorical distribution per latent channel over the integers
``[-R, R]`` (``R = support``), fitted from the histogram of ``y_hat`` on the training
data (a non-parametric factorized density, as CompressAI's EntropyBottleneck is a
parametric one). Symbols are range-coded with ``constriction``; values outside the
support are clamped, which the encoder reports as distortion, never as a crash.

Bitstream: the range coder's 32-bit words, little-endian; decode needs the latent
shape, which the payload header carries.
"""

from __future__ import annotations

from typing import Any

import constriction
import numpy as np

__all__ = ["FactorizedCategoricalCodec"]


class FactorizedCategoricalCodec:
    name = "factorized-categorical"

    def __init__(self, channels: int, support: int = 48, probabilities: np.ndarray | None = None) -> None:
        self.channels = channels
        self.support = support
        n = 2 * support + 1
        if probabilities is None:
            probabilities = np.full((channels, n), 1.0 / n)
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        if self.probabilities.shape != (channels, n):
            raise ValueError(f"prior table has shape {self.probabilities.shape}, expected {(channels, n)}")
        self._models = [
            constriction.stream.model.Categorical(p.astype(np.float32), perfect=False) for p in self.probabilities
        ]

    @classmethod
    def from_histogram(cls, histogram: np.ndarray, support: int) -> FactorizedCategoricalCodec:
        """Prior from symbol counts ``[C, 2R+1]``, smoothed so unseen symbols stay codable cheaply."""
        counts = np.asarray(histogram, dtype=np.float64)
        smoothed = counts + 0.5  # Krichevsky–Trofimov estimator
        return cls(counts.shape[0], support, smoothed / smoothed.sum(axis=1, keepdims=True))

    def histogram(self, y_hat: np.ndarray) -> np.ndarray:
        """Counts ``[C, 2R+1]`` of integer latents ``[N, C, ...]``; accumulate these to fit a prior."""
        sym = np.clip(y_hat, -self.support, self.support).astype(np.int64) + self.support
        sym = np.moveaxis(sym, 1, 0).reshape(self.channels, -1)
        n = 2 * self.support + 1
        offsets = (np.arange(self.channels) * n)[:, None]
        return np.bincount((sym + offsets).ravel(), minlength=self.channels * n).reshape(self.channels, n)

    def compress(self, y_hat: np.ndarray) -> bytes:
        """Integer latents ``[C, ...]`` -> bitstream."""
        sym = np.clip(np.rint(y_hat), -self.support, self.support).astype(np.int32) + self.support
        encoder = constriction.stream.queue.RangeEncoder()
        for c in range(self.channels):
            encoder.encode(np.ascontiguousarray(sym[c].ravel()), self._models[c])
        return encoder.get_compressed().astype("<u4").tobytes()

    def decompress(self, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        """Bitstream -> integer latents of ``shape`` (``[C, ...]``), as float32."""
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        per_channel = int(np.prod(shape[1:]))
        out = np.empty((self.channels, per_channel), dtype=np.int32)
        for c in range(self.channels):
            out[c] = decoder.decode(self._models[c], per_channel)
        return (out - self.support).reshape(shape).astype(np.float32)

    def bits_estimate(self, y_hat: np.ndarray) -> float:
        """Ideal code length in bits of ``y_hat`` ``[C, ...]`` under the prior (no coder overhead)."""
        sym = np.clip(np.rint(y_hat), -self.support, self.support).astype(np.int64) + self.support
        logp = np.log2(self.probabilities)
        return float(-sum(logp[c, sym[c].ravel()].sum() for c in range(self.channels)))

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "channels": self.channels, "support": self.support,
                "probabilities": self.probabilities.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FactorizedCategoricalCodec:
        return cls(state["channels"], state["support"], np.asarray(state["probabilities"]))
