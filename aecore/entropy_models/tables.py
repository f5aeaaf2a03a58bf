"""Range coding of integers under integer probability tables, identical on every machine.

A table ``j`` covers the symbols ``[-R_j, R_j]`` plus one escape symbol; its probabilities are
stored as integers (``pmf``, at least 1 each), so the coder's models are built from exactly the
same numbers wherever a payload is decoded: nothing transcendental is evaluated at decode time.

Elements are coded grouped by table, in table order, each group in the order the elements are
given (so a decoder that knows every element's table index decodes them back in place). Values
outside a table's range are coded as the escape symbol, then, after all groups, as a bit length
(``Uniform(34)``) and 16-bit chunks of their zigzag code: exact whatever the value, and cheap
because they are rare.
"""

from __future__ import annotations

import constriction
import numpy as np

__all__ = ["TableCoder"]

_MAX_ESCAPE_BITS = 33


def _zigzag(v: np.ndarray) -> np.ndarray:
    return np.where(v >= 0, 2 * v, -2 * v - 1).astype(np.int64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2).astype(np.int64)


class TableCoder:
    """Tables laid end to end in ``pmf`` (ints; table ``j`` holds ``2 * R_j + 2`` entries, escape
    last) with ``radius [T]`` (``R_j``)."""

    def __init__(self, pmf: np.ndarray, radius: np.ndarray) -> None:
        pmf = np.asarray(pmf, dtype=np.int64).ravel()
        self.radius = np.asarray(radius, dtype=np.int64)
        ends = np.cumsum(2 * self.radius + 2)
        if len(pmf) != (ends[-1] if len(ends) else 0):
            raise ValueError(f"{len(pmf)} table entries do not match {len(self.radius)} radii")
        if (pmf <= 0).any() or (pmf >= 1 << 24).any():
            raise ValueError("table entries must be integers in [1, 2**24)")
        # float32 holds these integers exactly: constriction sees the same numbers everywhere.
        self._models = [
            constriction.stream.model.Categorical(pmf[end - 2 * r - 2 : end].astype(np.float32), perfect=False)
            for end, r in zip(ends.tolist(), self.radius.tolist())
        ]

    @staticmethod
    def flatten(rows: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(r, np.int64) for r in rows]) if rows else np.zeros(0, np.int64)

    @staticmethod
    def quantize(probabilities: np.ndarray, precision: int = 20) -> np.ndarray:
        """Probabilities (escape last) -> integer table entries, none of them zero."""
        return np.floor(np.asarray(probabilities, np.float64) * (1 << precision)).astype(np.int64) + 1

    def encode(self, values: np.ndarray, index: np.ndarray) -> bytes:
        """Integers ``values`` each under table ``index`` (same shape) -> bytes."""
        values = np.asarray(values, np.int64).ravel()
        index = np.asarray(index, np.int64).ravel()
        encoder = constriction.stream.queue.RangeEncoder()
        escaped = []
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(len(self.radius) + 1))
        for j in range(len(self.radius)):
            sel = order[bounds[j] : bounds[j + 1]]
            if not len(sel):
                continue
            r = self.radius[j]
            v = values[sel]
            out = np.abs(v) > r
            symbols = np.where(out, 2 * r + 1, v + r).astype(np.int32)
            encoder.encode(symbols, self._models[j])
            escaped.append(v[out])
        if escaped and (esc := np.concatenate(escaped)).size:
            u = _zigzag(esc)
            if (u >= 1 << _MAX_ESCAPE_BITS).any():
                raise ValueError("a latent value is too large to code; the input is outside what the model handles")
            lengths = np.array([int(x).bit_length() for x in u], dtype=np.int32)
            encoder.encode(lengths, constriction.stream.model.Uniform(_MAX_ESCAPE_BITS + 1))
            for x, n in zip(u.tolist(), lengths.tolist()):
                for shift in range(0, n, 16):
                    encoder.encode(np.array([(x >> shift) & 0xFFFF], np.int32), constriction.stream.model.Uniform(1 << 16))
        return encoder.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, index: np.ndarray) -> np.ndarray:
        """Bytes -> the integers ``encode`` was given, in the shape of ``index``."""
        shape = np.shape(index)
        index = np.asarray(index, np.int64).ravel()
        if len(data) % 4:
            raise ValueError("corrupt latent stream (length not a multiple of 4)")
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        values = np.zeros(len(index), np.int64)
        order = np.argsort(index, kind="stable")
        bounds = np.searchsorted(index[order], np.arange(len(self.radius) + 1))
        escapes = []
        for j in range(len(self.radius)):
            sel = order[bounds[j] : bounds[j + 1]]
            if not len(sel):
                continue
            r = self.radius[j]
            symbols = decoder.decode(self._models[j], len(sel)).astype(np.int64)
            values[sel] = symbols - r
            escapes.append(sel[symbols == 2 * r + 1])
        where = np.concatenate(escapes) if escapes else np.zeros(0, np.int64)
        if where.size:
            lengths = decoder.decode(constriction.stream.model.Uniform(_MAX_ESCAPE_BITS + 1), where.size)
            u = np.zeros(where.size, np.int64)
            for k, n in enumerate(lengths.tolist()):
                x = 0
                for shift in range(0, n, 16):
                    x |= int(decoder.decode(constriction.stream.model.Uniform(1 << 16), 1)[0]) << shift
                u[k] = x
            values[where] = _unzigzag(u)
        return values.reshape(shape)
