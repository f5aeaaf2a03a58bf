"""Coders of a piece's exact values (lossless mode), chosen by the model (``exact_coder``).

Each codes the values under what the decoder knows of the piece — its ``y_hat``, and for models
that synthesize, the prediction ``x_hat`` seen through the modality (``view``) — and may offer a
classic coder that needs no latents at all (``encode_alone``): a piece keeps whichever is
smaller. Decoding may batch pieces (``decode_many``): a causal coder steps them together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import constriction
import numpy as np
import torch

from aecore.codecs.laplace import LaplaceResidualCodec

__all__ = ["ExactCoder", "ExactPiece", "LaplaceExactCoder", "SoftmaxExactCoder", "one_thread"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Predictions must be bit-identical at encode and decode: one thread for float math (the
    one guard every exact path uses: the codecs here and the Compressor's lossless residuals)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class ExactPiece:
    """What decoding one piece's values needs."""

    data: bytes
    y_hat: torch.Tensor | None  # None: coded without latents (``encode_alone``)
    view: np.ndarray | None  # the prediction as the modality lays out the values (synthesizing coders)
    count: int  # how many values


class ExactCoder(ABC):
    #: whether coding needs the prediction ``x_hat = g_s(y_hat)`` (else only ``y_hat``)
    synthesizes: ClassVar[bool] = True

    @abstractmethod
    def encode(self, symbols: np.ndarray, y_hat: torch.Tensor, view: np.ndarray | None) -> bytes: ...

    @abstractmethod
    def decode(self, piece: ExactPiece) -> np.ndarray: ...

    def decode_many(self, pieces: list[ExactPiece]) -> list[np.ndarray]:
        return [self.decode(p) if p.y_hat is not None else self.decode_alone(p) for p in pieces]

    def encode_alone(self, symbols: np.ndarray, zero_view: Callable[[], np.ndarray]) -> bytes | None:
        """The values without the model (a classic coder), or None where there is none."""
        return None

    def decode_alone(self, piece: ExactPiece) -> np.ndarray:
        raise ValueError("this piece was coded without latents, which this model's coder cannot do")


class LaplaceExactCoder(ExactCoder):
    """Pixels and PCM samples (``bits`` each) under a Laplace around the prediction, with the
    classic decorrelating predictors (``LaplaceResidualCodec``); alone: the predictors only."""

    def __init__(self, bits: int) -> None:
        self.levels = (1 << bits) - 1

    def encode(self, symbols: np.ndarray, y_hat: torch.Tensor, view: np.ndarray | None) -> bytes:
        assert view is not None
        return LaplaceResidualCodec(self.levels + 1).compress(symbols, view.astype(np.float64) * self.levels, view.shape)

    def decode(self, piece: ExactPiece) -> np.ndarray:
        assert piece.view is not None
        view = piece.view
        return LaplaceResidualCodec(self.levels + 1).decompress(piece.data, view.astype(np.float64) * self.levels, view.shape)

    def encode_alone(self, symbols: np.ndarray, zero_view: Callable[[], np.ndarray]) -> bytes | None:
        return self.encode(symbols, torch.empty(0), zero_view())

    def decode_alone(self, piece: ExactPiece) -> np.ndarray:
        return self.decode(piece)


class SoftmaxExactCoder(ExactCoder):
    """Bytes under the model's softmax at each position (a non-causal byte decoder)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def _blocks(self, view: np.ndarray):
        with one_thread():
            for p in self.model.probability_blocks(torch.from_numpy(np.ascontiguousarray(view))):
                # Quantized to a fixed grid so the coder's tables depend on nothing but these
                # integers; C order, since constriction reads the buffer row by row.
                yield np.ascontiguousarray(np.floor(p.cpu().numpy() * 65536.0) + 1.0, dtype=np.float32)

    def encode(self, symbols: np.ndarray, y_hat: torch.Tensor, view: np.ndarray | None) -> bytes:
        assert view is not None
        encoder = constriction.stream.queue.RangeEncoder()
        start = 0
        for probs in self._blocks(view):
            block = symbols[start : start + len(probs)].astype(np.int32)
            encoder.encode(block, constriction.stream.model.Categorical(perfect=False), probs)
            start += len(probs)
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, piece: ExactPiece) -> np.ndarray:
        assert piece.view is not None
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(piece.data, dtype="<u4").astype(np.uint32))
        out = [decoder.decode(constriction.stream.model.Categorical(perfect=False), probs) for probs in self._blocks(piece.view)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)
