"""Exact integers coded around the decoder's prediction: a discretized Laplace per block, with
classic decorrelating predictors where they beat the prediction alone.

Lossless coding of pixels and PCM samples, 8 or 16 bits, given the decoder's prediction ``mu``
(x_hat laid out like the values). The values of a plane (an image channel ``[H, W]``, or a signal
cut into rows of ``ROW`` samples) are coded block by block (whole rows, about ``BLOCK`` values).
Each block picks the cheapest of:

- ``mean``: ``v`` under a Laplace centred on ``mu`` over the valid levels ``[0, levels)``;
- a prediction error ``d`` of the residual ``r = v - round(mu)`` or of the values ``v``
  themselves (for the second and later planes — an image's colour channels, a recording's
  channels — also of their difference from the first plane's, as WebP's colour transforms and
  FLAC's stereo decorrelation): differences along x (orders 1-4, FLAC's fixed polynomial predictors), along y, or
  along both (the planar predictor), inverted exactly by cumulative sums; or, for signals, a
  linear predictor of order ``LPC_ORDER`` fitted to the block (Levinson–Durbin, coefficients
  quantized to ``1 / 2**LPC_SHIFT`` and sent), inverted by the integer recursion
  ``x[t] = d[t] + floor(sum_k q_k x[t-1-k] / 2**LPC_SHIFT)`` run over all rows at once —
  all under a Laplace centred on 0.

The decoder's prediction is what makes the residual small; the predictors take out what it
leaves correlated (a smooth residual, a tone, or a block the model predicts badly). The scale of
each block is its maximum-likelihood value ``mean |d|``, sent as a 2-byte log2 code with a 1-byte
choice (and the LPC coefficients, 2 bytes each); the first values of each row, which a predictor
has no history for, get a scale of their own (2 more bytes). constriction's ``QuantizedLaplace`` range-codes
the symbols.

Bitstream: per block ``u8 choice | i16 scale code | i16 warm-up scale code [| i16 x LPC_ORDER coefficients]`` (all blocks
first), then the range coder's words. Predictions are snapped to 1/8 of a level, so encoder and
decoder agree unless their float computations differ by more than that; every lossless payload
is decoded again at encode time.
"""

from __future__ import annotations

import struct

import constriction
import numpy as np
from scipy.linalg import LinAlgError, solve_toeplitz

__all__ = ["LaplaceResidualCodec"]

BLOCK = 4096
ROW = BLOCK  # 1-D signals are coded as rows of this many samples (one row per block)
LPC_ORDER = 16
LPC_SHIFT = 12
_STEPS = 16  # scale codes per octave
_MIN_CODE, _MAX_CODE = -40, 16 * 32
_HEAD = struct.Struct("<Bhh")  # choice, scale code, warm-up scale code
_LPC = struct.Struct(f"<{LPC_ORDER}h")
_CHOICES = ([("mean", None)] + [(src, t) for src in ("residual", "values")
                                for t in ("dx", "dx2", "dx3", "dx4", "lpc", "dy", "dxdy")]
            + [(src, t) for src in ("residual-plane0", "values-plane0") for t in ("dx", "dx2", "lpc", "dy", "dxdy")])
_TWO_D = {"dy", "dxdy"}
_ONE_D = {"lpc"}
# Sources relative to the first plane take out what planes share: an image's colour channels (as
# WebP's colour transforms), a recording's channels (as FLAC's stereo decorrelation).
_CROSS = {"residual-plane0", "values-plane0"}


def _offset(src: str, p: int, v: np.ndarray, rounded: np.ndarray, rows: slice = slice(None)) -> np.ndarray:
    """What is subtracted from plane ``p``'s values (``rows`` of them) to give source ``src``
    (the decoder adds it back)."""
    if src == "values":
        return np.zeros_like(rounded[p, rows])
    if src == "residual":
        return rounded[p, rows]
    if src == "values-plane0":
        return v[0, rows]
    return rounded[p, rows] + v[0, rows] - rounded[0, rows]  # residual-plane0


def _snap(means: np.ndarray, levels: int) -> np.ndarray:
    return np.clip(np.round(np.asarray(means, np.float64) * 8.0) / 8.0, 0.0, levels - 1.0)


def _x_order(transform: str | None) -> int:
    """The order of a difference along x only (``dx``, ``dx2`` ...), 0 for any other choice."""
    if transform and transform.startswith("dx") and transform != "dxdy":
        return int(transform[2:] or 1)
    return 0


def _forward(a: np.ndarray, transform: str, above: np.ndarray) -> np.ndarray:
    """Differences of rows ``a`` [h, w] (``above``: the row before the block, zeros at the top)."""
    left = np.zeros((a.shape[0], 1), a.dtype)
    if order := _x_order(transform):
        return np.diff(a, n=order, axis=1, prepend=np.zeros((a.shape[0], order), a.dtype))
    b = np.diff(a, axis=0, prepend=above[None])
    return b if transform == "dy" else np.diff(b, axis=1, prepend=left)


def _inverse(d: np.ndarray, transform: str, above: np.ndarray) -> np.ndarray:
    if order := _x_order(transform):
        for _ in range(order):
            d = np.cumsum(d, axis=1)
        return d
    b = d if transform == "dy" else np.cumsum(d, axis=1)
    return np.cumsum(b, axis=0) + above[None]


def _lpc_fit(a: np.ndarray) -> np.ndarray:
    """Quantized coefficients of the order-``LPC_ORDER`` linear predictor of the samples ``a``."""
    x = a.astype(np.float64).reshape(-1)
    if x.size <= LPC_ORDER:
        return np.zeros(LPC_ORDER, np.int64)
    r = np.array([np.dot(x[: x.size - k], x[k:]) for k in range(LPC_ORDER + 1)])
    if r[0] <= 0:
        return np.zeros(LPC_ORDER, np.int64)
    r[0] *= 1.0 + 1e-9  # a touch of white noise keeps the Toeplitz system well posed
    try:
        coef = solve_toeplitz(r[:-1], r[1:])
    except (LinAlgError, ValueError):
        return np.zeros(LPC_ORDER, np.int64)
    if not np.all(np.isfinite(coef)):
        return np.zeros(LPC_ORDER, np.int64)
    return np.clip(np.round(coef * (1 << LPC_SHIFT)), -32768, 32767).astype(np.int64)


def _lpc_forward(a: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Prediction errors of rows ``a`` [h, w], each row starting from silence."""
    acc = np.zeros_like(a)
    for k in range(LPC_ORDER):
        acc[:, k + 1 :] += q[k] * a[:, : a.shape[1] - k - 1]
    return a - (acc >> LPC_SHIFT)


def _lpc_inverse(d: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The recursion that undoes :func:`_lpc_forward`, over all rows ``d`` [R, w] at once
    (row i with its own coefficients ``q[i]``)."""
    x = np.zeros_like(d)
    history = np.zeros((d.shape[0], LPC_ORDER), np.int64)  # the last samples, most recent first
    for t in range(d.shape[1]):
        x[:, t] = d[:, t] + ((history * q).sum(axis=1) >> LPC_SHIFT)
        history[:, 1:] = history[:, :-1]
        history[:, 0] = x[:, t]
    return x


def _warmup(transform: str | None) -> int:
    """Leading samples of each row a predictor has no history for."""
    return LPC_ORDER if transform == "lpc" else _x_order(transform)


def _split(real: np.ndarray, transform: str | None) -> np.ndarray:
    """Which of a block's real values are warm-up (the first columns of each row, which a
    predictor has no history for): they get a scale of their own, so their large errors
    neither widen the distribution of all the others nor cost a fortune under it."""
    warm = np.zeros(real.shape, bool)
    warm[:, : _warmup(transform)] = True
    return warm[real]


def _scales(d: np.ndarray, warm: np.ndarray) -> tuple[int, int]:
    """Scale codes (steady, warm-up): each part's maximum-likelihood Laplace scale, mean |d|."""
    steady = np.abs(d[~warm])
    start = np.abs(d[warm])
    return (_code(float(steady.mean()) if steady.size else 0.0), _code(float(start.mean()) if start.size else 0.0))


def _per_value(warm: np.ndarray, codes: tuple[int, int]) -> np.ndarray:
    return np.where(warm, 2.0 ** (codes[1] / _STEPS), 2.0 ** (codes[0] / _STEPS))


def _block_bits(magnitude: np.ndarray, real: np.ndarray, warm: int, starts) -> np.ndarray:
    """:func:`_bits` of every block (rows from ``starts``) at once, from sums of |d| and counts:
    the steady and warm-up columns each under their own maximum-likelihood scale."""
    total = np.zeros(len(starts))
    for cols in ((slice(warm, None), slice(0, warm)) if warm else (slice(None),)):
        s = np.add.reduceat(magnitude[:, cols].sum(axis=1), starts)
        n = np.add.reduceat(real[:, cols].sum(axis=1), starts).astype(np.float64)
        codes = _codes(s / np.maximum(n, 1))
        b = np.maximum(2.0 ** (codes / _STEPS), 0.5)
        total += n * np.log2(2.0 * b) + s / b * np.log2(np.e)
    return total


def _codes(mad: np.ndarray) -> np.ndarray:
    """Scale codes (``_STEPS`` per octave) of mean absolute errors."""
    return np.clip(np.round(np.log2(np.maximum(mad, 1e-3)) * _STEPS), _MIN_CODE, _MAX_CODE)


def _code(mad: float) -> int:
    return int(_codes(np.asarray(mad)))


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
        # Errors beyond this (an unstable LPC, a fourth difference of a wild residual) rule their
        # choice out for the block; the Laplace around the prediction always fits.
        self.bound = 16 * levels
        self._diff_model = constriction.stream.model.QuantizedLaplace(-self.bound, self.bound)

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
        v = self._planes(np.asarray(values, np.int64).reshape(-1), shape)
        m = self._planes(_snap(means, self.levels).reshape(-1), shape, fill=-1.0)  # -1: padding of a signal's last row
        rounded = np.round(m).astype(np.int64)
        bounds = list(self._blocks(rows, width))
        starts = np.array([top for top, _ in bounds])
        heads, encoder = [], constriction.stream.queue.RangeEncoder()
        for p in range(v.shape[0]):
            real = m[p] >= 0
            index, chosen, lpc = self._choose(p, v, m, rounded, real, two_d, bounds, starts)
            for k, (top, bottom) in enumerate(bounds):
                src, transform = _CHOICES[index[k]]
                block_real = real[top:bottom]
                d = chosen[top:bottom][block_real]
                warm = _split(block_real, transform)
                codes = _scales(d, warm)
                extra = _LPC.pack(*lpc[k].tolist()) if transform == "lpc" else b""
                heads.append(_HEAD.pack(index[k], *codes) + extra)
                scale = _per_value(warm, codes)
                if src == "mean":
                    encoder.encode(v[p, top:bottom][block_real].astype(np.int32), self._mean_model,
                                   m[p, top:bottom][block_real], scale)
                else:
                    encoder.encode(d.astype(np.int32), self._diff_model, np.zeros(d.size), scale)
        return b"".join(heads) + encoder.get_compressed().astype("<u4").tobytes()

    def _choose(self, p, v, m, rounded, real, two_d, bounds, starts):
        """Per block of plane ``p``: the cheapest choice, its errors (whole-plane array, the rows
        of each block from its choice) and LPC coefficients. Costs come from per-block sums of
        |d|, so each choice is one pass over the plane, not one per block."""
        blocks = len(bounds)
        best = np.full(blocks, np.inf)
        index = np.zeros(blocks, np.int64)
        chosen = np.zeros(v[p].shape, np.float64)
        lpc = [np.zeros(LPC_ORDER, np.int64)] * blocks
        sizes = np.array([bottom - top for top, bottom in bounds])
        for i, (src, transform) in enumerate(_CHOICES):
            if (transform in _TWO_D and not two_d) or (transform in _ONE_D and two_d):
                continue
            if src in _CROSS and p == 0:
                continue
            a = None if src == "mean" else v[p] - _offset(src, p, v, rounded)
            if transform == "lpc":
                for k, (top, bottom) in enumerate(bounds):
                    q = _lpc_fit(a[top:bottom][real[top:bottom]])
                    d = _lpc_forward(a[top:bottom], q)
                    magnitude = np.abs(d) * real[top:bottom]
                    cost = _block_bits(magnitude, real[top:bottom], LPC_ORDER, [0]) + 8 * _LPC.size
                    if magnitude.max(initial=0) <= self.bound and cost[0] < best[k] - 16:
                        best[k], index[k], lpc[k] = cost[0], i, q
                        chosen[top:bottom] = d
                continue
            d = v[p] - m[p] if src == "mean" else _forward(a, transform, np.zeros(a.shape[1], np.int64))
            magnitude = np.abs(d) * real
            cost = _block_bits(magnitude, real, _warmup(transform), starts)
            cost[np.maximum.reduceat(magnitude.max(axis=1), starts) > self.bound] = np.inf
            better = cost < best - 16  # near-ties go to the earlier, simpler choice
            if better.any():
                best[better], index[better] = cost[better], i
                rows = np.repeat(better, sizes)
                chosen[rows] = d[rows]
        return index, chosen, lpc

    def decompress(self, data: bytes, means: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        if n == 0:
            return np.zeros(0, np.int32)
        planes, rows, width, _ = _grid(shape)
        m = self._planes(_snap(means, self.levels).reshape(-1), shape, fill=-1.0)
        rounded = np.round(m).astype(np.int64)
        blocks = [(p, top, bottom) for p in range(planes) for top, bottom in self._blocks(rows, width)]
        heads, pos = [], 0
        for _ in blocks:
            index, *codes = _HEAD.unpack_from(data, pos)
            pos += _HEAD.size
            q = None
            if _CHOICES[index][1] == "lpc":
                q = np.array(_LPC.unpack_from(data, pos), np.int64)
                pos += _LPC.size
            heads.append((index, tuple(codes), q))
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, "<u4", offset=pos).astype(np.uint32))
        # 1. the symbols: their distributions depend on the predictions and scales only
        symbols = []
        for (p, top, bottom), (index, codes, _) in zip(blocks, heads):
            real = m[p, top:bottom] >= 0
            scale = _per_value(_split(real, _CHOICES[index][1]), codes)
            block = np.zeros(real.shape, np.int64)
            if _CHOICES[index][0] == "mean":
                block[real] = decoder.decode(self._mean_model, m[p, top:bottom][real], scale)
            else:
                block[real] = decoder.decode(self._diff_model, np.zeros(scale.size), scale)
            symbols.append(block)
        # 2. the values, plane by plane (sources relative to plane 0 need it whole): a plane's LPC
        # blocks all together, then its other blocks in order (y needs the row above)
        v = np.zeros((planes, rows, width), np.int64)
        for plane in range(planes):
            mine = [k for k, (p, _, _) in enumerate(blocks) if p == plane]
            lpc = [k for k in mine if _CHOICES[heads[k][0]][1] == "lpc"]
            if lpc:
                d = np.concatenate([symbols[k] for k in lpc])
                q = np.concatenate([np.repeat(heads[k][2][None], symbols[k].shape[0], axis=0) for k in lpc])
                x = _lpc_inverse(d, q)
                start = 0
                for k in lpc:
                    (p, top, bottom), src = blocks[k], _CHOICES[heads[k][0]][0]
                    v[p, top:bottom] = x[start : start + bottom - top] + _offset(src, p, v, rounded, slice(top, bottom))
                    start += bottom - top
            for k in mine:
                (p, top, bottom), block = blocks[k], symbols[k]
                src, transform = _CHOICES[heads[k][0]]
                if src == "mean":
                    v[p, top:bottom] = block
                if src == "mean" or transform == "lpc":
                    continue
                first = max(top - 1, 0)
                offset = _offset(src, p, v, rounded, slice(first, bottom))
                above = v[p, top - 1] - offset[0] if top else np.zeros(width, np.int64)
                v[p, top:bottom] = _inverse(block, transform, above) + offset[top - first :]
        return v.reshape(planes, -1)[:, : n // planes].reshape(-1).astype(np.int32)
