"""Lossless audio by adaptive prediction (``lms-wav``), compiled with numba.

Learned from Monkey's Audio (Matthew Ashland's; its "NN filters"), written anew. A 16-bit WAV's
PCM, per channel (a stereo pair as side ``L - R`` and mid ``R + (side >> 1)`` first), runs through

- a fixed first-order predictor, ``a = s - (31 * s_prev >> 5)``;
- two cascaded sign-LMS filters (256 then 16 taps): each predicts its input from its own past
  inputs with integer weights, passes on what it could not predict, and steps each weight by
  ``sign(error) * delta``, where a past input's ``delta`` is its sign times 8, 16 or 32 by how
  large it was against the running mean (halved as it ages: the newest inputs adapt most);

and the residual is coded by a binary arithmetic coder (lpaq's, as ``cm`` uses): its bit length
by a binary tree whose probabilities adapt per running-mean context, then the bits below its top
bit, adaptive per (length, position). Encoder and decoder are one function (``encoding`` picks
the side), in integer arithmetic end to end: a payload decodes to the same samples on any
machine and thread count. The WAV recipe (:mod:`aecore.containers.wav`) rebuilds the header and
trailing chunks around them, as ``flac-wav`` does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import numpy as np

from aecore.archive.classic import ClassicCodec
from aecore.archive.codec import CodecContext, register_file_codec
from aecore.archive.media import split_recipe, wav_pcm16, with_recipe
from aecore.containers import get_container

__all__ = ["LmsWavCodec", "lms_compress", "lms_decompress"]

_HEADER = struct.Struct("<BQ")  # channels, frames
_STAGES = ((256, 14), (16, 10))  # (taps, weight shift) of the cascade
#: version 2: a normalized-LMS stage of 32 taps in front of the cascade (step 2^-7, energy floor
#: 2^10), and the coder's probabilities adapting at 1/(n + 1.5) until n = 250 (they are nearly
#: stationary: a fixed 1/32 cost 1.2-1.5 % on training clips)
_NLMS_TAPS, _NLMS_SHIFT, _NLMS_EPS = 32, 7, 1 << 10
_LIMIT = 250
_RATE = np.array([int(65536 / (n + 1.5)) for n in range(_LIMIT + 1)], dtype=np.int64)
_MAX_CHANNELS = 8
_THREADS = 2  # channels coded side by side (version 2)


def _kernel():  # noqa: ANN202 - compiled on first use (numba is imported only then)
    import numba

    @numba.njit(cache=True, nogil=True)
    def sgn(v):
        return (v > 0) - (v < 0)

    @numba.njit(cache=True, nogil=True)
    def delta_of(v, avg):
        a = abs(v)
        if a > 3 * avg:
            return sgn(v) * 32
        if 3 * a > 4 * avg:
            return sgn(v) * 16
        return sgn(v) * 8 if a else 0

    @numba.njit(cache=True, nogil=True)
    def bit(y, p, encoding, src, dst, x1, x2, x, at):
        """One binary decision at probability ``p``/4096 of a 1: ``(y, x1, x2, x, at)``; ``at``
        is where the encoder writes (-1: its buffer is full) or the decoder reads next."""
        mask32 = 0xFFFFFFFF
        xmid = x1 + ((x2 - x1) >> 12) * p
        if not encoding:
            y = 1 if x <= xmid else 0
        if y:
            x2 = xmid
        else:
            x1 = xmid + 1
        while ((x1 ^ x2) & 0xFF000000) == 0:
            if encoding:
                if at < 0 or at >= dst.shape[0]:
                    at = -1
                else:
                    dst[at] = (x2 >> 24) & 255
                    at += 1
            else:
                x = ((x << 8) & mask32) | (src[at] if at < src.shape[0] else 0)
                at += 1
            x1 = (x1 << 8) & mask32
            x2 = ((x2 << 8) & mask32) | 255
        return y, x1, x2, x, at

    @numba.njit(cache=True, nogil=True)
    def learn(prob, seen, i, y, v2, rate):
        """Move the probability of a 1 at ``prob[i]`` towards ``y``: at 1/(n + 1.5) of the way up to
        n = _LIMIT (16 bits; version 2), or by 1/32 (12 bits; version 1)."""
        if v2:
            n = seen[i]
            prob[i] += ((y << 16) - prob[i]) * rate[n] >> 16
            seen[i] = min(n + 1, _LIMIT)
        else:
            prob[i] += ((y << 12) - prob[i]) >> 5

    @numba.njit(cache=True, nogil=True)
    def dot_of(w, h):
        """A filter's prediction before its shift (1-D views: the loop vectorizes)."""
        s = 0
        for i in range(w.shape[0]):
            s += np.int64(w[i]) * np.int64(h[i])
        return s

    @numba.njit(cache=True, nogil=True)
    def adapt(w, d, step):
        for i in range(w.shape[0]):
            w[i] += step * d[i]

    @numba.njit(cache=True, nogil=True)
    def push(h, d, pos, order, v, avg):
        """``v`` becomes the newest input of a filter's window (which slides one back); the
        deltas of older inputs halve at lags 4 and 8. Returns the new window position."""
        pos = pos - 1 if pos > 0 else order - 1
        h[pos] = v
        h[pos + order] = v
        dv = delta_of(v, avg)
        d[pos] = dv
        d[pos + order] = dv
        for lag in (4, 8):
            if lag < order:
                q = (pos + lag) % order
                d[q] >>= 1
                d[q + order] = d[q]
        return pos

    @numba.njit(cache=True, nogil=True)
    def code(values, src, dst, encoding, orders, shifts, v2, rate, work):  # noqa: PLR0912, PLR0913, PLR0915
        """``v2``: the NLMS stage in front of the cascade and count-based adaptation of the coder's
        probabilities (``lms2-wav``); without it, ``lms-wav`` exactly as it was first written.
        ``work``: the cascade's weights, windows and deltas, ``[channel, 3, stage, 2 * widest]``
        (int64 for version 1, as first written; int32 for version 2, twice as fast)."""
        mask32 = 0xFFFFFFFF
        channels, frames = values.shape
        x1, x2, x = 0, mask32, 0
        at = 0
        if not encoding:
            for _ in range(4):
                x = ((x << 8) & mask32) | (src[at] if at < src.shape[0] else 0)
                at += 1
        for ch in range(channels):
            stages = orders.shape[0]
            w = work[ch, 0]
            h = work[ch, 1]  # each input twice: h[k, pos : pos + order] is the window
            d = work[ch, 2]
            pos = np.zeros(stages, np.int64)
            avg = np.zeros(stages, np.int64)  # running means of |input|, x16
            pred = np.zeros(stages, np.int64)
            e = np.zeros(stages + 1, np.int64)  # e[k]: stage k's input; e[stages]: the residual
            one = 32768 if v2 else 2048  # probabilities of a 1: 16 bits (v2, count-based rates) or 12
            prob_k = np.full((64, 32), one, np.int64)
            prob_m = np.full((32, 32), one, np.int64)
            n_k = np.zeros((64, 32), np.int64)
            n_m = np.zeros((32, 32), np.int64)
            nn = _NLMS_TAPS if v2 else 0
            wn = np.zeros(max(nn, 1), np.int64)  # the NLMS stage: weights x 2^28, its window twice
            hn = np.zeros(2 * max(nn, 1), np.int64)
            npos, norm = 0, 0
            avg_u = 16  # running mean of the coded value, x16
            prev = 0
            for n in range(frames):
                pred_a = (prev * 31) >> 5
                pn = 0
                if nn:
                    dn = 0
                    for i in range(nn):
                        dn += wn[i] * hn[npos + i]
                    pn = (dn + (1 << 27)) >> 28
                for k in range(stages):
                    at_k = pos[k]
                    dot = dot_of(w[k, : orders[k]], h[k, at_k : at_k + orders[k]])
                    pred[k] = (dot + (1 << (shifts[k] - 1))) >> shifts[k]
                u, k = 0, 0
                if encoding:
                    r = values[ch, n] - pred_a - pn - pred.sum()
                    u = 2 * r if r >= 0 else -2 * r - 1
                    while (u >> k) > 0:
                        k += 1
                # the context: the running mean's bit length, in half octaves
                bl = 0
                while (avg_u >> bl) > 0:
                    bl += 1
                ctx = min(63, 2 * bl + ((avg_u >> (bl - 2)) & 1 if bl >= 2 else 0))
                # the bit length k (0..31): a binary tree of 5 decisions
                node, kk = 1, 0
                for depth in range(5):
                    y = (k >> (4 - depth)) & 1
                    p = min(4095, max(1, prob_k[ctx, node] >> 4 if v2 else prob_k[ctx, node]))
                    y, x1, x2, x, at = bit(y, p, encoding, src, dst, x1, x2, x, at)
                    learn(prob_k[ctx], n_k[ctx], node, y, v2, rate)
                    node = 2 * node + y
                    kk = (kk << 1) | y
                k = kk
                if not encoding:
                    u = (1 << (k - 1)) if k > 0 else 0
                # the k - 1 bits below the top bit, adaptive per (length, position)
                for j in range(k - 2, -1, -1):
                    y = (u >> j) & 1
                    p = min(4095, max(1, prob_m[k, j] >> 4 if v2 else prob_m[k, j]))
                    y, x1, x2, x, at = bit(y, p, encoding, src, dst, x1, x2, x, at)
                    learn(prob_m[k], n_m[k], j, y, v2, rate)
                    u |= y << j
                if at < 0:
                    return -1  # the stream outgrew its buffer: the caller stores the file instead
                avg_u += ((u << 4) - avg_u) >> 4
                r = (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)
                e[stages] = r
                for k in range(stages - 1, -1, -1):
                    e[k] = e[k + 1] + pred[k]
                a_in = e[0] + pn  # the NLMS stage's input (without one: e[0] itself)
                s = a_in + pred_a
                if nn:  # normalized LMS: each weight steps by err * input / (the window's energy)
                    g = (e[0] << 28) // ((norm + _NLMS_EPS) << _NLMS_SHIFT)
                    for i in range(nn):
                        wn[i] += g * hn[npos + i]
                    old = hn[npos + nn - 1]
                    npos = npos - 1 if npos > 0 else nn - 1
                    hn[npos] = a_in
                    hn[npos + nn] = a_in
                    norm += a_in * a_in - old * old
                if not encoding:
                    values[ch, n] = s
                # each stage learns from its own error (its output), then takes its input into its window
                for k in range(stages):
                    step = sgn(e[k + 1])
                    if step != 0:
                        at_k = pos[k]
                        adapt(w[k, : orders[k]], d[k, at_k : at_k + orders[k]], w.dtype.type(step))
                    pos[k] = push(h[k], d[k], pos[k], orders[k], e[k], avg[k] >> 4)
                    avg[k] += ((abs(e[k]) << 4) - avg[k]) >> 4
                prev = s
        if encoding:
            if at < 0 or at + 4 > dst.shape[0]:
                return -1
            for _ in range(4):
                dst[at] = (x1 >> 24) & 255
                at += 1
                x1 = (x1 << 8) & mask32
        return at

    return code


_CODE = None


def _code():  # noqa: ANN202
    global _CODE
    if _CODE is None:
        _CODE = _kernel()
    return _CODE


def _decorrelate(values: np.ndarray) -> np.ndarray:
    """Signed samples ``[C, N]``; a stereo pair as (side, mid), exactly invertible."""
    if values.shape[0] != 2:
        return values
    side = values[0] - values[1]
    return np.stack([side, values[1] + (side >> 1)])


def _correlate(coded: np.ndarray) -> np.ndarray:
    if coded.shape[0] != 2:
        return coded
    right = coded[1] - (coded[0] >> 1)
    return np.stack([coded[0] + right, right])


def _work(values: np.ndarray, version: int) -> np.ndarray:
    widest = max(order for order, _ in _STAGES)
    return np.zeros((values.shape[0], 3, len(_STAGES), 2 * widest), np.int32 if version == 2 else np.int64)


def _each_channel(run: Callable[[int], int], channels: int) -> list[int]:
    """``run(channel)`` for every channel, two at a time (the kernel releases the GIL)."""
    if channels == 1:
        return [run(0)]
    with ThreadPoolExecutor(min(channels, _THREADS)) as pool:
        return list(pool.map(run, range(channels)))


def lms_compress(samples: np.ndarray, version: int = 2) -> bytes | None:
    """Signed integer samples ``[C, N]`` (16-bit range) -> stream, or None if it would not be
    smaller; ``version`` 2 (``lms2-wav``: each channel its own stream, coded and decoded side by
    side) or 1 (``lms-wav``, as first written: one stream)."""
    orders, shifts = (np.array(v, np.int64) for v in zip(*_STAGES))
    values = np.ascontiguousarray(_decorrelate(samples.astype(np.int64)))
    if version == 1:
        dst = np.zeros(2 * values.size + 64, dtype=np.uint8)  # past 16 bits a sample: not worth it
        used = _code()(values, np.zeros(1, np.uint8), dst, True, orders, shifts, False, _RATE, _work(values, 1))
        return None if used < 0 else _HEADER.pack(*values.shape) + dst[:used].tobytes()
    dsts = [np.zeros(2 * values.shape[1] + 64, dtype=np.uint8) for _ in range(values.shape[0])]

    def run(ch: int) -> int:
        one = values[ch : ch + 1]
        return _code()(one, np.zeros(1, np.uint8), dsts[ch], True, orders, shifts, True, _RATE, _work(one, 2))

    used = _each_channel(run, values.shape[0])
    if min(used) < 0:
        return None
    return (_HEADER.pack(*values.shape) + struct.pack(f"<{len(used)}I", *used)
            + b"".join(d[:u].tobytes() for d, u in zip(dsts, used)))


def lms_decompress(stream: bytes, size: int | None = None, version: int = 2) -> np.ndarray:
    channels, frames = _HEADER.unpack_from(stream)
    if not 1 <= channels <= _MAX_CHANNELS or (size is not None and channels * frames * 2 > size):
        raise ValueError(f"lms payload claims {channels} channels of {frames:,} frames; the row is corrupt")
    orders, shifts = (np.array(v, np.int64) for v in zip(*_STAGES))
    values = np.zeros((channels, frames), dtype=np.int64)
    if version == 1:
        src = np.frombuffer(stream, dtype=np.uint8, offset=_HEADER.size)
        _code()(values, src, np.zeros(1, np.uint8), False, orders, shifts, False, _RATE, _work(values, 1))
        return _correlate(values)
    lengths = struct.unpack_from(f"<{channels}I", stream, _HEADER.size)
    starts = np.cumsum((_HEADER.size + 4 * channels, *lengths))
    if starts[-1] > len(stream):
        raise ValueError("lms payload shorter than its channels' streams; the row is corrupt")

    def run(ch: int) -> int:
        one = values[ch : ch + 1]
        src = np.frombuffer(stream, dtype=np.uint8, offset=int(starts[ch]), count=lengths[ch])
        return _code()(one, src, np.zeros(1, np.uint8), False, orders, shifts, True, _RATE, _work(one, 2))

    _each_channel(run, channels)
    return _correlate(values)


@register_file_codec("lms2-wav")
class Lms2WavCodec(ClassicCodec):
    """A 16-bit WAV (1 to 8 channels) by the adaptive prediction above, beside its WAV recipe."""

    solid = False  # a transcode of this one file's content, never part of a solid block
    kinds = ("audio",)
    efforts = ("default", "max")  # fast: FLAC alone
    lms_version = 2

    @classmethod
    def library(cls) -> str:
        return f"aec lms/{cls.lms_version} (numba {version('numba')})"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        pcm = wav_pcm16(data, _MAX_CHANNELS)
        coded = None if pcm is None else lms_compress(pcm[0], self.lms_version)
        return None if coded is None else with_recipe(pcm[1], coded)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        recipe, coded = split_recipe(stream)
        samples = lms_decompress(coded, size, self.lms_version)
        if samples.size and (samples.min() < -32768 or samples.max() > 32767):
            raise ValueError("lms payload decodes outside 16 bits; the row is corrupt")
        return get_container("wav").build(samples + 32768, recipe)


@register_file_codec("lms-wav")
class LmsWavCodec(Lms2WavCodec):
    """The first version (no NLMS stage, fixed-rate probabilities): kept so the archives it wrote
    restore; new archives code with ``lms2-wav`` (1.2-1.5 % smaller on training clips)."""

    lms_version = 1

    def tried(self, kind: str, effort: str) -> bool:
        return False
