"""Exact integers coded around the decoder's prediction: a discretized Laplace per block, with
classic decorrelating predictors where they beat the prediction alone.

Lossless coding of pixels and PCM samples, 8 or 16 bits, given the decoder's prediction ``mu``
(x_hat laid out like the values). The values of a plane (an image channel ``[H, W]``, or a signal
cut into rows of ``ROW`` samples) are coded block by block (whole rows, about ``BLOCK`` values).
Each block picks the cheapest of:

- ``mean``: ``v`` under a Laplace centred on ``mu`` over the valid levels ``[0, levels)``;
- a difference ``d`` of the residual ``r = v - round(mu)`` or of the values ``v`` themselves
  along x (order 1 or 2, FLAC's fixed polynomial predictors), along y, or along both (the
  planar predictor) — each inverted exactly by cumulative sums — under a Laplace centred on 0.

The decoder's prediction is what makes the residual small; the differences take out what it
leaves correlated (a smooth residual, or a block the model predicts badly). The scale of each
block is its maximum-likelihood value ``mean |d|``, sent as a 2-byte log2 code with a 1-byte
choice (3 bytes per block). constriction's ``QuantizedLaplace`` range-codes the symbols.

Bitstream: per block ``u8 choice | i16 scale code`` (all blocks first), then the range coder's
words. Predictions are snapped to 1/8 of a level, so encoder and decoder agree unless their
float computations differ by more than that; every lossless payload is decoded again at encode
time.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np

__all__ = ["LaplaceResidualCodec"]

BLOCK = 4096
ROW = 1024  # 1-D signals are coded as rows of this many samples
_STEPS = 16  # scale codes per octave
_MIN_CODE, _MAX_CODE = -40, 16 * 32
_HEAD = struct.Struct("<Bh")
# (source, transform): source 0 = values around the prediction, 1 = residual, 2 = values
_CHOICES = [("mean", None)] + [(src, t) for src in ("residual", "values") for t in ("dx", "dx2", "dx3", "dx4", "dy", "dxdy")]
_TWO_D = {"dy", "dxdy"}


def _snap(means: np.ndarray, levels: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(means, np.float64) * 8.0) / 8.0, 0.0, levels - 1.0)


def _forward(a: np.ndarray, transform: str, above: np.ndarray) -> np.ndarray:
    """Differences of rows ``a`` [h, w] (``above``: the row before the block, zeros at the top)."""
    left = np.zeros((a.shape[0], 1), a.dtype)
    if transform.startswith("dx") and transform != "dxdy":
        order = int(transform[2:] or 1)
        return np.diff(a, n=order, axis=1, prepend=np.zeros((a.shape[0], order), a.dtype))
    b = np.diff(a, axis=0, prepend=above[None])
    return b if transform == "dy" else np.diff(b, axis=1, prepend=left)


def _inverse(d: np.ndarray, transform: str, above: np.ndarray) -> np.ndarray:
    if transform.startswith("dx") and transform != "dxdy":
        for _ in range(int(transform[2:] or 1)):
            d = np.cumsum(d, axis=1)
        return d
    b = d if transform == "dy" else np.cumsum(d, axis=1)
    return np.cumsum(b, axis=0) + above[None]


def _code(mad: float) -> int:
    return int(np.clip(np.round(np.log2(max(mad, 1e-3)) * _STEPS), _MIN_CODE, _MAX_CODE))


def _grid(shape: tuple[int, ...]) -> tuple[int, int, int, bool]:
    """(planes, rows, width, 2-D) of a view: [P, H, W] images, [P, N] signals cut into rows."""
    if len(shape) == 3:
        return shape[0], shape[1], shape[2], True
    n = shape[-1]
    width = min(ROW, max(n, 1))
    return int(np.prod(shape[:-1])), -(-n // width), width, False


class LaplaceResidualCodec:
    def __init__(self, levels: int) -> None:
        self.levels = levels
        self._mean_model = constriction.stream.model.QuantizedLaplace(0, levels - 1)
        bound = 16 * levels  # |d| of a fourth difference of values in [0, levels)
        self._diff_model = constriction.stream.model.QuantizedLaplace(-bound, bound)

    def _planes(self, a: np.ndarray, shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
        planes, rows, width, _ = _grid(shape)
        flat = a.reshape(planes, -1)
        pad = rows * width - flat.shape[1]
        return np.pad(flat, ((0, 0), (0, pad)), constant_values=fill).reshape(planes, rows, width)

    def _blocks(self, rows: int, width: int):
        step = max(1, BLOCK // max(width, 1))
        for top in range(0, rows, step):
            yield top, min(rows, top + step)

    def compress(self, values: np.ndarray, means: np.ndarray, shape: tuple[int, ...]) -> bytes:
        n = int(np.prod(shape))
        if n == 0:
            return b""
        _, rows, width, two_d = _grid(shape)
        mu = _snap(means, self.levels).reshape(-1)
        v = self._planes(np.asarray(values, np.int64).reshape(-1), shape)
        m = self._planes(mu, shape, fill=-1.0)  # -1 marks the padding of a signal's last row
        sources = {"residual": v - np.round(m).astype(np.int64), "values": v}
        heads, encoder = [], constriction.stream.queue.RangeEncoder()
        for p in range(v.shape[0]):
            for top, bottom in self._blocks(rows, width):
                real = m[p, top:bottom] >= 0
                best = None
                for index, (src, transform) in enumerate(_CHOICES):
                    if transform in _TWO_D and not two_d:
                        continue
                    if src == "mean":
                        d = v[p, top:bottom][real] - m[p, top:bottom][real]
                    else:
                        a = sources[src][p]
                        above = a[top - 1] if top else np.zeros(width, np.int64)
                        d = _forward(a[top:bottom], transform, above)[real]
                    cost = float(np.abs(d).sum()) if d.size else 0.0
                    if best is None or cost < best[0] * 0.98:  # ties go to the earlier, simpler choice
                        best = (cost, index, d)
                _, index, d = best
                code = _code(float(np.abs(d).mean()) if d.size else 0.0)
                heads.append(_HEAD.pack(index, code))
                scale = np.full(d.size, 2.0 ** (code / _STEPS))
                if _CHOICES[index][0] == "mean":
                    encoder.encode(v[p, top:bottom][real].astype(np.int32), self._mean_model, m[p, top:bottom][real], scale)
                else:
                    encoder.encode(d.astype(np.int32), self._diff_model, np.zeros(d.size), scale)
        return b"".join(heads) + encoder.get_compressed().astype("<u4").tobytes()

    def decompress(self, data: bytes, means: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if n == 0:
            return np.zeros(0, np.int32)
        planes, rows, width, _ = _grid(shape)
        m = self._planes(_snap(means, self.levels).reshape(-1), shape, fill=-1.0)
        blocks = list(self._blocks(rows, width))
        heads = [_HEAD.unpack_from(data, i * _HEAD.size) for i in range(planes * len(blocks))]
        words = np.frombuffer(data, "<u4", offset=_HEAD.size * len(heads)).astype(np.uint32)
        decoder = constriction.stream.queue.RangeDecoder(words)
        v = np.zeros((planes, rows, width), np.int64)
        rounded = np.round(m).astype(np.int64)
        k = 0
        for p in range(planes):
            for top, bottom in blocks:
                index, code = heads[k]
                k += 1
                src, transform = _CHOICES[index]
                real = m[p, top:bottom] >= 0
                scale = np.full(int(real.sum()), 2.0 ** (code / _STEPS))
                if src == "mean":
                    block = np.zeros(real.shape, np.int64)
                    block[real] = decoder.decode(self._mean_model, m[p, top:bottom][real], scale)
                else:
                    d = np.zeros(real.shape, np.int64)
                    d[real] = decoder.decode(self._diff_model, np.zeros(scale.size), scale)
                    offset = rounded[p] if src == "residual" else 0
                    above = (v[p, top - 1] - (offset[top - 1] if src == "residual" else 0)) if top else np.zeros(width, np.int64)
                    block = _inverse(d, transform, above) + (offset[top:bottom] if src == "residual" else 0)
                v[p, top:bottom] = block
        return v.reshape(planes, -1)[:, : n // planes].reshape(-1).astype(np.int32)
