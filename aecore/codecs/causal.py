"""Bytes range-coded under a causal model's predictions, computed in exact integer arithmetic.

A causal decoder's probabilities are computed in parallel at encode (teacher forcing) and one
position at a time at decode. In float arithmetic the two give different roundings, and one
differing probability garbles the rest of the chunk. Here both run the same integer network
(the twin of :class:`~aecore.models.text_causal.TextCausalAE`'s decoder):

- weights ``round(W * 2**WEIGHT_BITS)``, activations ``a * 2**ACT_BITS`` (integers), each layer
  ``floor((W a + b) / 2**WEIGHT_BITS)``, ReLU, residual sums — exact in float64 below 2**53, so
  the same integers whichever way the sums are ordered (one parallel pass, or a step per byte
  with each block's past in a ring buffer);
- the byte distribution from the integer logits through a table: ``p_i = EXP[(max - l_i) / 2**7]``
  (steps of 1/32 nat, 24 nats deep), ``EXP[k] = floor(2**23 exp(-k/32)) + 1`` computed with
  Python's ``decimal`` (no platform ``exp``), so the range coder gets the same integers everywhere.

Each piece (chunk) is its own range-coded stream; decode steps all pieces of a call together.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, getcontext
from typing import Any

import constriction
import numpy as np
import torch
import torch.nn.functional as F

from aecore.codecs.exact import ExactCoder, ExactPiece
from aecore.codecs.match import MatchHistory, default_table, mix
from aecore.latent_codecs.integer import ACT_BITS, WEIGHT_BITS

__all__ = ["EXP_TABLE", "CausalByteCoder", "CausalExactCoder"]

_STEP_BITS = ACT_BITS - 5  # logits in 1/32 nat
_DEPTH = 24 * 32


def _exp_table() -> np.ndarray:
    getcontext().prec = 40
    e = Decimal(-1) / Decimal(32)
    return np.array([int((Decimal(2) ** 23 * (e * k).exp()).to_integral_value(rounding="ROUND_FLOOR")) + 1
                     for k in range(_DEPTH)], dtype=np.float64)


EXP_TABLE = _exp_table()
_W = 2.0**WEIGHT_BITS
_A = 2.0**ACT_BITS


def _q(t: torch.Tensor, scale: float) -> torch.Tensor:
    return torch.round(t.detach().to("cpu", torch.float64) * scale)


class CausalByteCoder:
    """The integer twin of a :class:`TextCausalAE` decoder, mixed with a match model primed with
    ``dictionary`` (``aecore.codecs.match``), and the range coding around them."""

    def __init__(self, model: torch.nn.Module, dictionary: bytes = b"", table: np.ndarray | None = None) -> None:
        self.primer = bytes(dictionary)
        self.index = MatchHistory.index(self.primer)
        self.table = np.asarray(table if table is not None else default_table(), dtype=np.int64)
        self.stride = model.stride
        self.embed = _q(model.embed_previous.weight, _A)  # [257, W]
        self.cond_w = _q(model.condition.weight[:, :, 0], _W)  # [W, C]
        self.cond_b = _q(model.condition.bias, _A * _W)
        self.blocks = []
        for b in model.blocks:
            w = _q(b.conv.weight, _W)  # [W, W, 2]: tap 0 is t - d, tap 1 is t
            self.blocks.append({"d": b.dilation, "w": w, "w_cat": torch.cat([w[:, :, 0], w[:, :, 1]], 1).T.contiguous(),
                                "b": _q(b.conv.bias, _A * _W), "out": _q(b.out.weight[:, :, 0], _W).T.contiguous(),
                                "out_b": _q(b.out.bias, _A * _W)})
        self.head = _q(model.head.weight[:, :, 0], _W).T.contiguous()  # [W, 256]
        self.head_b = _q(model.head.bias, _A * _W)
        self.exp = torch.from_numpy(EXP_TABLE)

    # -- the network, both ways ------------------------------------------------------------------

    def _cond(self, y_hat: torch.Tensor, length: int) -> torch.Tensor:
        """``y_hat [N, C, L/64]`` (integers) -> ``[N, W, L]`` fixed point."""
        c = torch.einsum("wc,ncl->nwl", self.cond_w, y_hat.double() * _A) + self.cond_b.view(1, -1, 1)
        return torch.floor(c / _W).repeat_interleave(self.stride, dim=-1)[..., :length]

    def _logits_parallel(self, tokens: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``tokens [N, L]`` -> integer logits ``[N, L, 256]``."""
        prev = F.pad(tokens, (1, 0), value=256)[:, :-1]
        h = self.embed[prev].transpose(1, 2) + self._cond(y_hat, tokens.shape[1])  # [N, W, L]
        for b in self.blocks:
            a = F.conv1d(F.pad(h, (b["d"], 0)), b["w"], dilation=b["d"]) + b["b"].view(1, -1, 1)
            u = torch.relu(torch.floor(a / _W))
            h = h + torch.floor((torch.einsum("vw,nwl->nvl", b["out"].T, u) + b["out_b"].view(1, -1, 1)) / _W)
        return torch.floor((torch.einsum("nwl,wk->nlk", torch.relu(h), self.head) + self.head_b) / _W)

    def _weights(self, logits: torch.Tensor) -> np.ndarray:
        """Integer logits ``[n, 256]`` -> the byte model's integer weights (``EXP`` table)."""
        d = torch.floor((logits.amax(dim=-1, keepdim=True) - logits) / 2.0**_STEP_BITS).clamp(max=_DEPTH - 1)
        return self.exp[d.long()].numpy().astype(np.int64)

    def _matches(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The match model's prediction and length bucket before each byte of a known piece."""
        hist = MatchHistory(self.primer, self.index)
        pred = np.empty(len(tokens), np.int64)
        length = np.empty(len(tokens), np.int64)
        for t, b in enumerate(tokens.tolist()):
            pred[t], length[t] = hist.predict()
            hist.update(b)
        return pred, length

    def _probabilities(self, tokens: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
        weights, pred, length, _ = self.events(tokens, y_hat)
        return mix(weights, pred, length, self.table)

    def events(self, tokens: np.ndarray, y_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(weights, pred, length, truth)`` of a piece, for calibrating the match table."""
        logits = self._logits_parallel(torch.from_numpy(tokens.astype(np.int64))[None], torch.from_numpy(np.asarray(y_hat))[None])
        pred, length = self._matches(tokens)
        return self._weights(logits[0]), pred, length, tokens.astype(np.int64)

    # -- coding ------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, tokens: np.ndarray, y_hat: np.ndarray) -> bytes:
        """One piece: bytes ``[L]`` (ints) and its latent ``[C, L/64]`` -> the range-coded stream."""
        if not tokens.size:
            return b""
        encoder = constriction.stream.queue.RangeEncoder()
        encoder.encode(tokens.astype(np.int32), constriction.stream.model.Categorical(perfect=False),
                       np.ascontiguousarray(self._probabilities(tokens, y_hat)))
        return encoder.get_compressed().astype("<u4").tobytes()

    def cost_bits(self, tokens: np.ndarray, y_hat: np.ndarray) -> float:
        """The ideal code length of a piece (for choosing between coders without coding)."""
        p = self._probabilities(tokens, y_hat).astype(np.float64)
        return float(-np.log2(p[np.arange(len(tokens)), tokens] / p.sum(axis=1)).sum())

    @torch.no_grad()
    def decode(self, streams: list[bytes], y_hats: list[np.ndarray], lengths: list[int]) -> list[np.ndarray]:
        """Pieces decoded together, one position per step: ``streams[i]`` of ``lengths[i]`` bytes.
        The step runs in NumPy (float64, the same integers as the parallel pass): per-step
        overhead, not arithmetic, is what limits a byte-by-byte decoder."""
        n = len(streams)
        if not n:
            return []
        longest = max(lengths, default=0)
        decoders = [constriction.stream.queue.RangeDecoder(np.frombuffer(s, dtype="<u4").astype(np.uint32))
                    for s in streams]
        width = self.embed.shape[1]
        cond = np.zeros((longest, n, width), dtype=np.float64)
        for i, y in enumerate(y_hats):
            if lengths[i]:
                cond[: lengths[i], i] = self._cond(torch.from_numpy(np.asarray(y))[None], lengths[i])[0].T.numpy()
        embed = self.embed.numpy()
        blocks = [(b["d"], b["w_cat"].numpy(), b["b"].numpy(), b["out"].numpy(), b["out_b"].numpy()) for b in self.blocks]
        rings = [np.zeros((b["d"], n, width), dtype=np.float64) for b in self.blocks]
        head, head_b, exp = self.head.numpy(), self.head_b.numpy(), EXP_TABLE.astype(np.int64)
        hists = [MatchHistory(self.primer, self.index) for _ in range(n)]
        pred = np.full(n, -1, dtype=np.int64)
        length = np.zeros(n, dtype=np.int64)
        out = np.zeros((n, longest), dtype=np.int64)
        prev = np.full(n, 256, dtype=np.int64)
        model = constriction.stream.model.Categorical(perfect=False)
        step = 2.0**_STEP_BITS
        for t in range(longest):
            h = embed[prev] + cond[t]  # [n, W]
            for (d, w_cat, bias, w_out, b_out), ring in zip(blocks, rings):
                past = ring[t % d].copy()  # h at t - d (zeros before the start)
                ring[t % d] = h
                u = np.maximum(np.floor((np.concatenate([past, h], 1) @ w_cat + bias) / _W), 0.0)
                h = h + np.floor((u @ w_out + b_out) / _W)
            logits = np.floor((np.maximum(h, 0.0) @ head + head_b) / _W)
            d = np.minimum(np.floor((logits.max(axis=1, keepdims=True) - logits) / step), _DEPTH - 1).astype(np.int64)
            for i in range(n):
                pred[i], length[i] = hists[i].predict()
            probs = mix(exp[d], pred, length, self.table)
            for i in range(n):
                if t < lengths[i]:
                    out[i, t] = decoders[i].decode(model, probs[i : i + 1])[0]
                    hists[i].update(int(out[i, t]))
            prev = out[:, t]
        return [out[i, : lengths[i]] for i in range(n)]


class CausalExactCoder(ExactCoder):
    """Text bytes under a causal model (``CausalByteCoder``); alone: zstd -19 with the dictionary
    trained on the model's collection (stored in its bundle), so a piece is never coded worse
    than zstd with that dictionary would code it."""

    synthesizes = False

    def __init__(self, model: torch.nn.Module, dictionary: bytes | None, table: np.ndarray | None = None) -> None:
        self.coder = CausalByteCoder(model, dictionary or b"", table)
        self.dictionary = dictionary or None

    def _zstd(self) -> tuple[Any, Any]:
        import zstandard

        d = zstandard.ZstdCompressionDict(self.dictionary) if self.dictionary else None
        return zstandard.ZstdCompressor(level=19, dict_data=d), zstandard.ZstdDecompressor(dict_data=d)

    def encode(self, symbols: np.ndarray, y_hat: torch.Tensor, view: np.ndarray | None) -> bytes:
        return self.coder.encode(np.asarray(symbols, np.int64), y_hat.numpy())

    def decode(self, piece: ExactPiece) -> np.ndarray:
        return self.decode_many([piece])[0]

    def decode_many(self, pieces: list[ExactPiece]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(pieces)
        model = [i for i, p in enumerate(pieces) if p.y_hat is not None]
        for i, values in zip(model, self.coder.decode([pieces[i].data for i in model],
                                                       [pieces[i].y_hat.numpy() for i in model],
                                                       [pieces[i].count for i in model])):
            out[i] = values
        for i, p in enumerate(pieces):
            if p.y_hat is None:
                out[i] = self.decode_alone(p)
        return out  # type: ignore[return-value]

    def encode_alone(self, symbols: np.ndarray, zero_view: Callable[[], np.ndarray]) -> bytes | None:
        return self._zstd()[0].compress(np.asarray(symbols, np.uint8).tobytes())

    def decode_alone(self, piece: ExactPiece) -> np.ndarray:
        import zstandard

        try:
            data = self._zstd()[1].decompress(piece.data, max_output_size=piece.count)
        except zstandard.ZstdError as exc:
            raise ValueError(f"a zstd piece does not decompress ({exc}); the row is corrupt") from None
        if len(data) != piece.count:
            raise ValueError(f"a zstd piece holds {len(data)} bytes, not {piece.count}; the row is corrupt")
        return np.frombuffer(data, np.uint8).astype(np.int64)
