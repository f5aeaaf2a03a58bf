"""A context-mixing coder for text and other bytes (``cm``), compiled with numba.

Learned from lpaq1 (Matt Mahoney's; the Large Text Compression Benchmark's lpaq family), written
anew: each byte is coded as 8 binary decisions by a binary arithmetic coder; each decision's
probability is mixed from

- hashed context models of orders 1, 2, 3, 4 and 6 and of the current word (letters), each an
  adaptive probability per (context, partial byte) whose learning rate falls as it is seen;
- a match model: the longest earlier occurrence of the last 6 bytes predicts the next bit, with
  a confidence learned per match length;

by two small online networks in the logistic domain (one's weights selected by the partial byte
and the match length, the other's by the previous byte and the bit position; each trained on
every bit, their outputs averaged), then refined by an adaptive probability map (SSE) on the
order-1 context. A file's history is the whole file, not pieces coded apart.

Integer arithmetic end to end (tables, counters, mixer, coder), so a payload is the same bytes
on any machine and thread count, and decodes only the way it was encoded. Memory: the tables
grow with the file (2^16 to 2^22 slots per model, about 190 MB at most, from 2 MB of input up: 8 models x 5 bytes a slot).
"""

from __future__ import annotations

import struct
from importlib.metadata import version

import numpy as np

from aecore.archive.classic import ClassicCodec
from aecore.archive.codec import CodecContext, register_file_codec

__all__ = ["CmCodec", "cm_compress", "cm_decompress"]

_HEADER = struct.Struct("<QB")  # length, table bits
_ORDERS = (1, 2, 3, 4, 6)
_N_CTX = len(_ORDERS) + 3  # + the word model and two sparse contexts
_N_IN = _N_CTX + 2  # + the match model and a bias
_MINLEN = 6  # the match model's hashed context length


def _squash_table() -> np.ndarray:
    t = np.array([1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607,
                  3785, 3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094], dtype=np.int64)
    out = np.zeros(4096, dtype=np.int64)  # index d + 2048, d in [-2048, 2047]
    for d in range(-2048, 2048):
        if d > 2047:
            v = 4095
        elif d < -2047:
            v = 0
        else:
            w = d & 127
            k = (d >> 7) + 16
            v = (int(t[k]) * (128 - w) + int(t[k + 1]) * w + 64) >> 7
        out[d + 2048] = v
    return out


def _stretch_table(squash: np.ndarray) -> np.ndarray:
    out = np.zeros(4096, dtype=np.int64)
    pi = 0
    for x in range(-2047, 2048):
        v = int(squash[x + 2048])
        for i in range(pi, v + 1):
            out[i] = x
        pi = v + 1
    out[pi:] = 2047
    return out


_SQUASH = _squash_table()
_STRETCH = _stretch_table(_SQUASH)
_RATE = np.array([int(65536 / (n + 1.5)) for n in range(256)], dtype=np.int64)
_LIMIT = 30  # counters stop slowing down here: text drifts


def _kernel():  # noqa: ANN202 - compiled on first use (numba is imported only then)
    import numba

    @numba.njit(cache=True, nogil=True)
    def code(src, dst, n, bits, encoding, squash, stretch, rate):  # noqa: PLR0912, PLR0915
        mask32 = 0xFFFFFFFF
        size = 1 << bits
        smask = size - 1
        probs = np.full((_N_CTX, size), 32768, dtype=np.int32)
        counts = np.zeros((_N_CTX, size), dtype=np.uint8)
        mprob = np.full(64 * 2, 32768, dtype=np.int32)
        mcount = np.zeros(64 * 2, dtype=np.uint8)
        mtable = np.zeros(1 << 20, dtype=np.int64)
        weights = np.full((4 * 256, _N_IN), 1 << 14, dtype=np.int64)
        weights2 = np.full((256 * 8, _N_IN), 1 << 14, dtype=np.int64)
        apm2 = np.zeros(65536 * 33, dtype=np.int32)
        for i in range(33):
            v = squash[min(4095, max(0, (i - 16) * 128 + 2048))] * 16
            for c in range(65536):
                apm2[c * 33 + i] = v
        hashes = np.zeros(_N_CTX, dtype=np.int64)
        slots = np.zeros(_N_CTX, dtype=np.int64)
        inputs = np.zeros(_N_IN, dtype=np.int64)
        x1, x2, x = 0, mask32, 0
        out_at, in_at = 0, 0
        if not encoding:
            for _ in range(4):
                x = (x << 8) | (src[in_at] if in_at < src.shape[0] else 0)
                in_at += 1
        word = 0
        mptr, mlen = 0, 0
        for pos in range(n):
            # contexts at the byte boundary: hashes of the last 1, 2, 3, 4, 6 bytes and of the word
            hist = dst if not encoding else src
            h = 0
            k = 0
            for order in range(1, 7):
                c = hist[pos - order] if pos >= order else 0
                h = ((h + c + 1) * 0x2F0F1A3B + order) & mask32
                if order == 1 or order == 2 or order == 3 or order == 4 or order == 6:
                    hashes[k] = (h * (k + 1) * 0x9E3779B1) & mask32
                    k += 1
            c1 = hist[pos - 1] if pos >= 1 else 0
            c2 = hist[pos - 2] if pos >= 2 else 0
            if (c1 >= 65 and c1 <= 90) or (c1 >= 97 and c1 <= 122):
                word = ((word ^ (c1 | 32)) * 0x01000193) & mask32
            elif pos > 0:
                word = 0
            hashes[5] = ((word + 0x51ED27) * 0x85EBCA77) & mask32
            c3 = hist[pos - 3] if pos >= 3 else 0
            hashes[6] = ((c2 + 0x1000) * 0xC2B2AE3D) & mask32  # sparse: the byte before last alone
            hashes[7] = (((c3 << 8 | c2) + 0x20000) * 0x27D4EB2F) & mask32  # sparse: the two before that
            # the match model: the last earlier place the last 6 bytes occurred
            if pos >= _MINLEN:
                mh = 0
                for j in range(1, _MINLEN + 1):
                    mh = (mh * 0x2C9277B5 + hist[pos - j] + 1) & mask32
                mh = mh >> 12
                if mlen > 0 and mptr < pos and hist[mptr] == c1:
                    mlen = min(mlen + 1, 63)
                    mptr += 1
                else:
                    mlen = 0
                    cand = mtable[mh]
                    if cand > 0:
                        ln = 0
                        while ln < 32 and cand - ln - 1 >= 0 and hist[cand - ln - 1] == hist[pos - ln - 1]:
                            ln += 1
                        if ln >= _MINLEN:
                            mlen, mptr = ln, cand
                mtable[mh] = pos
            predicted = hist[mptr] if mlen > 0 and mptr < pos else -1
            c0 = 1
            byte = src[pos] if encoding else 0
            for bitpos in range(8):
                # predictions
                for i in range(_N_CTX):
                    slots[i] = ((hashes[i] + c0 * 0x6F4F2A25) & mask32) & smask
                    inputs[i] = stretch[probs[i, slots[i]] >> 4]
                mslot = -1
                expect = 0
                if predicted >= 0 and ((predicted | 256) >> (8 - bitpos)) == c0:
                    expect = (predicted >> (7 - bitpos)) & 1
                    mslot = min(mlen, 63) * 2 + expect
                    st = stretch[mprob[mslot] >> 4]
                    inputs[_N_CTX] = st
                else:
                    inputs[_N_CTX] = 0
                inputs[_N_CTX + 1] = 256
                mbucket = 0 if mslot < 0 else (1 if mlen < 16 else (2 if mlen < 32 else 3))
                wrow = mbucket * 256 + c0
                dot = 0
                dot2 = 0
                wrow2 = c1 * 8 + bitpos
                for i in range(_N_IN):
                    dot += inputs[i] * weights[wrow, i]
                    dot2 += inputs[i] * weights2[wrow2, i]
                dot = min(2047, max(-2047, dot >> 16))
                dot2 = min(2047, max(-2047, dot2 >> 16))
                pm1 = squash[dot + 2048]
                pm2 = squash[dot2 + 2048]
                pmix = squash[((dot + dot2) >> 1) + 2048]
                # SSE: order 0 and order 1, interpolated between buckets of the stretched probability
                s = stretch[pmix] + 2048  # 1 .. 4095
                lo = s >> 7
                wt = s & 127
                a2 = ((c0 | (c1 << 8)) & 0xFFFF) * 33 + lo
                p2 = (apm2[a2] * (128 - wt) + apm2[a2 + 1] * wt) >> 11
                p = (pmix + 3 * p2 + 2) >> 2
                p = min(4095, max(1, p))
                # code the bit
                xmid = x1 + ((x2 - x1) >> 12) * p
                if encoding:
                    y = (byte >> (7 - bitpos)) & 1
                else:
                    y = 1 if x <= xmid else 0
                if y:
                    x2 = xmid
                else:
                    x1 = xmid + 1
                while ((x1 ^ x2) & 0xFF000000) == 0:
                    if encoding:
                        if out_at >= dst.shape[0]:
                            return -1  # the stream outgrew its buffer: the caller stores the file instead
                        dst[out_at] = (x2 >> 24) & 255
                        out_at += 1
                    else:
                        x = ((x << 8) & mask32) | (src[in_at] if in_at < src.shape[0] else 0)
                        in_at += 1
                    x1 = (x1 << 8) & mask32
                    x2 = ((x2 << 8) & mask32) | 255
                # learn
                err = (y << 12) - pm1
                err2 = (y << 12) - pm2
                for i in range(_N_IN):
                    weights[wrow, i] += (inputs[i] * err) >> 12
                    weights2[wrow2, i] += (inputs[i] * err2) >> 12
                target = y << 16
                for i in range(_N_CTX):
                    j = slots[i]
                    cnt = counts[i, j]
                    probs[i, j] += ((target - probs[i, j]) * rate[cnt]) >> 16
                    if cnt < _LIMIT:
                        counts[i, j] = cnt + 1
                if mslot >= 0:
                    cnt = mcount[mslot]
                    mprob[mslot] += ((target - mprob[mslot]) * rate[cnt]) >> 16
                    if cnt < 255:
                        mcount[mslot] = cnt + 1
                g = (y << 16) + (y << 6) - y - y
                apm2[a2 + (wt >> 6)] += (g - apm2[a2 + (wt >> 6)]) >> 6
                c0 = (c0 << 1) | y
            if not encoding:
                dst[pos] = c0 & 255
        if encoding:
            if out_at + 4 > dst.shape[0]:
                return -1
            for _ in range(4):
                dst[out_at] = (x1 >> 24) & 255
                out_at += 1
                x1 = (x1 << 8) & mask32
        return out_at

    return code


_CODE = None


def _code():  # noqa: ANN202
    global _CODE
    if _CODE is None:
        _CODE = _kernel()
    return _CODE


def _bits(n: int) -> int:
    return min(24, max(16, (2 * n).bit_length() + 2))


def cm_compress(data: bytes) -> bytes | None:
    n = len(data)
    bits = _bits(n)
    src = np.frombuffer(data, dtype=np.uint8)
    dst = np.zeros(n + n // 8 + 64, dtype=np.uint8)  # never more than ~1.01x plus the coder's flush
    used = _code()(src, dst, n, bits, True, _SQUASH, _STRETCH, _RATE)
    if used < 0:
        return None
    return _HEADER.pack(n, bits) + dst[:used].tobytes()


def cm_decompress(stream: bytes, size: int | None = None) -> bytes:
    n, bits = _HEADER.unpack_from(stream)
    if size is not None and n > size:
        raise ValueError(f"cm payload claims {n:,} bytes, the row {size:,}; the row is corrupt")
    if not 16 <= bits <= 24:
        raise ValueError("cm payload with impossible settings; the row is corrupt")
    src = np.frombuffer(stream, dtype=np.uint8, offset=_HEADER.size)
    dst = np.zeros(n, dtype=np.uint8)
    _code()(src, dst, n, bits, False, _SQUASH, _STRETCH, _RATE)
    return dst.tobytes()


@register_file_codec("cm")
class CmCodec(ClassicCodec):
    """The first context-mixing coder: kept so the archives it wrote restore; new archives code
    with its successor, ``cm2`` (:mod:`aecore.archive.cm2`: 5.6 % smaller on text, as fast)."""

    def tried(self, kind: str, effort: str) -> bool:
        return False

    @classmethod
    def library(cls) -> str:
        return f"aec cm/1 (numba {version('numba')})"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        return cm_compress(data)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        return cm_decompress(stream, size)
