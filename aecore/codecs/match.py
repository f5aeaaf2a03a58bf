"""A match model beside the causal byte model: long repeats, in exact integers.

The causal decoder sees 256 bytes back; text repeats itself much further away (HTML
boilerplate, code, translations). As in PAQ's match model: the last ``MIN_MATCH`` bytes are
looked up in a table of where that context last ended — in the piece so far, or in the
collection's zstd dictionary, which primes the history — and the byte that followed is the
prediction, trusted by how long the match has run. The byte model's distribution is then mixed
with it by a secondary estimate learned from data (``MatchTable``: P(prediction right | match
length bucket, the byte model's own probability of it bucket), in 1/4096):

    p(pred) = T,  p(other) = (1 - T) * q(other) / (1 - q(pred))

in integers: the byte model's weights are renormalized to 2**16, the predicted byte's weight set
to ``floor(T * S / (4096 - T)) + 1`` with ``S`` the others' sum (T at most 4079, so every weight
stays below 2**24 and exact in float32). Encoder and decoder run the very same integer steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEN_BUCKETS", "MIN_MATCH", "PROB_BUCKETS", "MatchHistory", "calibrate", "default_table", "mix"]

MIN_MATCH = 6
LEN_BUCKETS = 16
PROB_BUCKETS = 16
T_MAX = 4079
_NORM = 1 << 16


class MatchHistory:
    """One piece's history (after a shared primer) and its current match."""

    __slots__ = ("base", "prime", "buf", "table", "ptr", "length")

    def __init__(self, prime: bytes, base: dict[bytes, int]) -> None:
        self.prime, self.base = prime, base
        self.buf = bytearray()
        self.table: dict[bytes, int] = {}
        self.ptr: int | None = None
        self.length = 0

    @staticmethod
    def index(prime: bytes) -> dict[bytes, int]:
        """Where each ``MIN_MATCH``-byte context of the primer last ended."""
        return {prime[i - MIN_MATCH : i]: i for i in range(MIN_MATCH, len(prime) + 1)}

    def _at(self, pos: int) -> int:
        n = len(self.prime)
        return self.prime[pos] if pos < n else self.buf[pos - n]

    def predict(self) -> tuple[int, int]:
        """``(byte, length bucket)``, or ``(-1, 0)`` without a match."""
        if self.ptr is None:
            return -1, 0
        return self._at(self.ptr), min(LEN_BUCKETS - 1, self.length.bit_length())

    def update(self, byte: int) -> None:
        if self.ptr is not None and self._at(self.ptr) == byte:
            self.ptr += 1
            self.length += 1
        else:
            self.ptr, self.length = None, 0
        self.buf.append(byte)
        if len(self.prime) + len(self.buf) < MIN_MATCH:
            return
        if len(self.buf) >= MIN_MATCH:
            key = bytes(self.buf[-MIN_MATCH:])
        else:
            key = (self.prime[-(MIN_MATCH - len(self.buf)) :] + bytes(self.buf))[-MIN_MATCH:]
        if self.ptr is None:
            found = self.table.get(key)
            if found is None:
                found = self.base.get(key)
            if found is not None:
                self.ptr, self.length = found, MIN_MATCH
        self.table[key] = len(self.prime) + len(self.buf)


def default_table() -> np.ndarray:
    """Trust the byte model (no data yet): T at each bucket's own probability."""
    centre = (np.arange(PROB_BUCKETS) + 0.5) / PROB_BUCKETS * 4096
    return np.clip(np.tile(centre, (LEN_BUCKETS, 1)), 1, T_MAX).astype(np.int64)


def _normalized(weights: np.ndarray) -> np.ndarray:
    w = weights.astype(np.int64)
    return (w * _NORM) // w.sum(axis=-1, keepdims=True) + 1


def _buckets(q: np.ndarray, pred: np.ndarray) -> np.ndarray:
    rows = np.arange(len(pred))
    qp = q[rows, np.maximum(pred, 0)]
    return np.minimum(PROB_BUCKETS - 1, (PROB_BUCKETS * qp) // q.sum(axis=1))


def mix(weights: np.ndarray, pred: np.ndarray, length: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Integer weights ``[n, 256]`` of the byte model, each row's match prediction (``-1``: none)
    and length bucket -> the mixed integer weights, as float32 (exact)."""
    q = _normalized(weights)
    has = pred >= 0
    if has.any():
        rows = np.nonzero(has)[0]
        p = pred[rows]
        qp = q[rows, p]
        others = q[rows].sum(axis=1) - qp
        t = np.minimum(table[length[rows], _buckets(q[rows], p)], T_MAX)
        q[rows, p] = (t * others) // (4096 - t) + 1
    return q.astype(np.float32)


def calibrate(events: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], strength: float = 4.0) -> np.ndarray:
    """The table from ``(weights, pred, length, truth)`` per position of some text: the share of
    right predictions per (length, probability) bucket, drawn to the byte model's own
    probability where there are few."""
    right = np.zeros((LEN_BUCKETS, PROB_BUCKETS))
    seen = np.zeros((LEN_BUCKETS, PROB_BUCKETS))
    for weights, pred, length, truth in events:
        has = pred >= 0
        if not has.any():
            continue
        q = _normalized(weights[has])
        pb = _buckets(q, pred[has])
        np.add.at(seen, (length[has], pb), 1)
        np.add.at(right, (length[has], pb), (pred[has] == truth[has]).astype(np.float64))
    prior = default_table() / 4096
    share = (right + strength * prior) / (seen + strength)
    return np.clip(np.floor(share * 4096), 1, T_MAX).astype(np.int64)
