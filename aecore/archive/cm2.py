"""Context mixing, second generation (``cm2``): bit histories, primed starting states, compiled with numba.

Learned from lpaq1 and paq8 (Matt Mahoney's; the Large Text Compression Benchmark's lpaq family),
written anew. Each byte is coded as 8 binary decisions by a binary arithmetic coder; each
decision's probability is mixed from

- hashed context models (orders 1, 2, 3, 4, 6, the current word, the word before it, two sparse
  contexts): each context owns a 16-byte bucket per nibble (a checksum and the 15 nodes of the
  nibble's bit tree); a node holds a *bit history* (a state standing for "n0 zeros and n1 ones
  lately", the older count discounted when the other bit comes), and a per-model adaptive map
  turns a state into a probability (indirect modelling: what this kind of history predicted here
  before, not what this one context saw);
- an order-0 model and a match model (the longest earlier occurrence of the last bytes predicts
  the next bit: its confidence learned per match length, and the length itself);

by three small online networks in the logistic domain (weights selected by the partial byte and
the match length; by the previous byte and the bit position; by the partial byte and how many
context orders have seen this node), whose outputs a fourth, tiny network mixes per bit position;
then refined by adaptive probability maps (SSE) on orders 0 and 1.

**Priming.** :class:`Primer` runs the model over a collection's text before a file (learning only,
nothing coded) and keeps the state it ends in; each file starts from that state, so a small file
is coded as if the collection came before it. ``aec train`` picks the primer text of a collection
(:mod:`aecore.archive.prime`); it is stored once, in the text model's bundle.

Integer arithmetic end to end (tables, counters, mixer, coder): a payload is the same bytes on any
machine and thread count, and decodes only the way it was encoded.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from dataclasses import dataclass
from importlib.metadata import version

import numpy as np

from aecore.archive.classic import ClassicCodec
from aecore.archive.cm import _SQUASH, _STRETCH
from aecore.archive.codec import CodecContext, register_file_codec

__all__ = ["Cm2Codec", "Primer", "cm2_compress", "cm2_decompress"]

_HEADER = struct.Struct("<QBI")  # length, bucket bits, the primer's tag (0: none)
_ORDERS = (1, 2, 3, 4, 6)
_N_CTX = len(_ORDERS) + 4  # hashed context models with bit histories (+ two word and two sparse contexts)
_N_IN = _N_CTX + 4  # + order 0, the match model (two inputs) and a bias
_N_SM = _N_CTX + 1  # state maps: one per hashed model, one for order 0
_MINLEN = 6  # the match model's hashed context length
_SM_LIMIT = 255
_MIN_BITS, _MAX_BITS = 12, 20  # buckets per context model: 2^12 .. 2^20 (64 KB .. 16 MB each)
_MATCH_BITS = 20
_APM2_BITS = 16
_SCALARS = 8  # word hash, previous word hash, match pointer, match length, journal rows used


def _state_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit-history states: ``(n0, n1)`` pairs reachable from ``(0, 0)`` when a bit adds one to its
    count (at most 28) and discounts the other's above 2 (roughly halved): 242 states, state 0 is
    ``(0, 0)``. Returns ``next[state, bit]``, the initial probability of a 1 (16 bits) and each
    state's total count (a bucket's priority)."""

    def step(n0: int, n1: int, y: int) -> tuple[int, int]:
        def discount(n: int) -> int:
            return n if n <= 2 else ((n + 1) // 2 + 1 if n < 6 else n // 2)

        return (discount(n0), min(n1 + 1, 28)) if y else (min(n0 + 1, 28), discount(n1))

    states = [(0, 0)]
    index = {(0, 0): 0}
    at = 0
    while at < len(states):  # breadth first: numbering does not depend on set order
        for y in (0, 1):
            t = step(*states[at], y)
            if t not in index:
                index[t] = len(states)
                states.append(t)
        at += 1
    assert len(states) <= 256
    nxt = np.zeros((256, 2), dtype=np.uint8)
    p1 = np.full(256, 32768, dtype=np.int32)
    total = np.zeros(256, dtype=np.int32)
    for s, (n0, n1) in enumerate(states):
        nxt[s, 0], nxt[s, 1] = index[step(n0, n1, 0)], index[step(n0, n1, 1)]
        p1[s] = (65536 * (2 * n1 + 1)) // (2 * (n0 + n1) + 2)
        total[s] = n0 + n1
    return nxt, p1, total


_NEXT, _P1, _TOTAL = _state_table()
_RATE = np.array([int(65536 / (n + 1.5)) for n in range(1024)], dtype=np.int64)


def _kernel():  # noqa: ANN202 - compiled on first use (numba is imported only then)
    import numba

    @numba.njit(cache=True, nogil=True)
    def run(hist, start, end, src, dst, mode, tables, smp, smn, t0, mtable, mprob, mcount, w1, w2, w3, wf, apm1, apm2,
            scal, journal, nxt, total, squash, stretch, rate):  # noqa: PLR0912, PLR0913, PLR0915
        """Model ``hist[start:end]``. mode 0: learn only (priming); 1: encode into ``dst``
        (returns the bytes written, -1 when it outgrew ``dst``); 2: decode ``src`` into ``hist``.
        With a ``journal`` (rows ``[what, index, old, old]``), every bucket, match-table and SSE
        entry is recorded before it changes, so :func:`undo` can give the state back as it was."""
        keep = journal.shape[0] > 0
        jn = 0
        mask32 = 0xFFFFFFFF
        nb = tables.shape[1] >> 4
        bmask = nb - 1
        mmask = mtable.shape[0] - 1
        amask = (apm2.shape[0] // 33) - 1
        hashes = np.zeros(_N_CTX, dtype=np.int64)
        base = np.zeros(_N_CTX, dtype=np.int64)
        sts = np.zeros(_N_SM, dtype=np.int64)
        inputs = np.zeros(_N_IN, dtype=np.int64)
        x1, x2, x = 0, mask32, 0
        out_at, in_at = 0, 0
        if mode == 2:
            for _ in range(4):
                x = (x << 8) | (src[in_at] if in_at < src.shape[0] else 0)
                in_at += 1
        word, word_prev, mptr, mlen = scal[0], scal[1], scal[2], scal[3]
        for pos in range(start, end):
            c1 = hist[pos - 1] if pos >= 1 else 0
            c2 = hist[pos - 2] if pos >= 2 else 0
            c3 = hist[pos - 3] if pos >= 3 else 0
            # the word (letters, case folded) and the one before it
            if (c1 >= 65 and c1 <= 90) or (c1 >= 97 and c1 <= 122) or c1 >= 128:
                word = ((word ^ (c1 | 32)) * 0x01000193) & mask32
            elif word != 0:
                word_prev = word
                word = 0
            # contexts at the byte boundary: hashes of the last 1, 2, 3, 4, 6 bytes, the words, sparse
            h = 0
            k = 0
            for order in range(1, _ORDERS[-1] + 1):
                c = hist[pos - order] if pos >= order else 0
                h = ((h + c + 1) * 0x2F0F1A3B + order) & mask32
                if order == _ORDERS[k]:
                    hashes[k] = ((h + k) * 0x9E3779B1) & mask32
                    k += 1
            hashes[k] = ((word + 0x51ED27) * 0x85EBCA77) & mask32
            hashes[k + 1] = (((word_prev * 0x2545F491 + word) & mask32) * 0xC2B2AE3D + 0x1234567) & mask32
            hashes[k + 2] = ((c2 + 0x1000) * 0x27D4EB2F) & mask32  # sparse: the byte before last alone
            hashes[k + 3] = (((c3 << 8 | c2) + 0x20000) * 0x165667B1) & mask32  # sparse: the two before that
            # the match model: the last earlier place the last _MINLEN bytes occurred
            if pos >= _MINLEN:
                mh = 0
                for j in range(1, _MINLEN + 1):
                    mh = (mh * 0x2C9277B5 + hist[pos - j] + 1) & mask32
                mh = (mh >> 4) & mmask
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
                if keep:
                    journal[jn, 0], journal[jn, 1], journal[jn, 2] = -1, mh, mtable[mh]
                    jn += 1
                mtable[mh] = pos
            predicted = hist[mptr] if mlen > 0 and mptr < pos else -1
            c0 = 1
            byte = hist[pos] if mode != 2 else 0
            for bitpos in range(8):
                if bitpos == 0 or bitpos == 4:
                    # each model's bucket for this nibble: checked by 8 bits of the hash; of two
                    # places, the one holding this context, else the less used one is taken over
                    for i in range(_N_CTX):
                        hh = hashes[i] if bitpos == 0 else ((hashes[i] + c0 * 0x3C6EF372) * 0x9E3779B1) & mask32
                        chk = (hh >> 24) & 255
                        b0 = (hh & bmask) << 4
                        b1 = ((hh & bmask) ^ 1) << 4
                        if tables[i, b0] == chk:
                            b = b0
                        elif tables[i, b1] == chk:
                            b = b1
                        else:
                            b = b0 if total[tables[i, b0 + 1]] <= total[tables[i, b1 + 1]] else b1
                        if keep:  # the bucket as it was, before this nibble changes it
                            lo, hi = 0, 0
                            for j in range(8):
                                lo |= np.int64(tables[i, b + j]) << (8 * j)
                                hi |= np.int64(tables[i, b + 8 + j]) << (8 * j)
                            journal[jn, 0], journal[jn, 1], journal[jn, 2], journal[jn, 3] = i, b, lo, hi
                            jn += 1
                        if tables[i, b] != chk:
                            tables[i, b] = chk
                            for j in range(1, 16):
                                tables[i, b + j] = 0
                        base[i] = b
                node = c0 if bitpos < 4 else ((1 << (bitpos - 4)) | (c0 & ((1 << (bitpos - 4)) - 1)))
                seen = 0
                for i in range(_N_CTX):
                    st = tables[i, base[i] + node]
                    sts[i] = st
                    inputs[i] = stretch[smp[i, st] >> 4]
                    if i < len(_ORDERS) and st != 0:
                        seen += 1
                st = t0[c0]
                sts[_N_CTX] = st
                inputs[_N_CTX] = stretch[smp[_N_CTX, st] >> 4]
                mslot = -1
                if predicted >= 0 and ((predicted | 256) >> (8 - bitpos)) == c0:
                    expect = (predicted >> (7 - bitpos)) & 1
                    mslot = min(mlen, 63) * 2 + expect
                    inputs[_N_CTX + 1] = stretch[mprob[mslot] >> 4]
                    inputs[_N_CTX + 3] = (2 * expect - 1) * min(mlen, 32) * 32
                else:
                    inputs[_N_CTX + 1] = 0
                    inputs[_N_CTX + 3] = 0
                inputs[_N_CTX + 2] = 256
                mbucket = 0 if mslot < 0 else (1 if mlen < 16 else (2 if mlen < 32 else 3))
                r1 = mbucket * 256 + c0
                r2 = c1 * 8 + bitpos
                r3 = seen * 256 + c0
                dot1 = 0
                dot2 = 0
                dot3 = 0
                for i in range(_N_IN):
                    dot1 += inputs[i] * w1[r1, i]
                    dot2 += inputs[i] * w2[r2, i]
                    dot3 += inputs[i] * w3[r3, i]
                dot1 = min(2047, max(-2047, dot1 >> 16))
                dot2 = min(2047, max(-2047, dot2 >> 16))
                dot3 = min(2047, max(-2047, dot3 >> 16))
                # the final network: the two mixers' outputs, weights by bit position
                rf = bitpos
                dotf = min(2047, max(-2047, (dot1 * wf[rf, 0] + dot2 * wf[rf, 1] + dot3 * wf[rf, 3] + 256 * wf[rf, 2]) >> 16))
                p1m = squash[dot1 + 2048]
                p2m = squash[dot2 + 2048]
                p3m = squash[dot3 + 2048]
                pmix = squash[dotf + 2048]
                # SSE on order 0 and on order 1 (+ the partial byte), interpolated between buckets
                s = dotf + 2048
                lo = s >> 7
                wt = s & 127
                a1 = c0 * 33 + lo
                pa1 = (apm1[a1] * (128 - wt) + apm1[a1 + 1] * wt) >> 11
                a2 = ((c0 | (c1 << 8)) & amask) * 33 + lo
                pa2 = (apm2[a2] * (128 - wt) + apm2[a2 + 1] * wt) >> 11
                p = (pmix + pa1 + 2 * pa2 + 2) >> 2
                p = min(4095, max(1, p))
                # code the bit
                xmid = x1 + ((x2 - x1) >> 12) * p
                if mode == 2:
                    y = 1 if x <= xmid else 0
                else:
                    y = (byte >> (7 - bitpos)) & 1
                if mode != 0:
                    if y:
                        x2 = xmid
                    else:
                        x1 = xmid + 1
                    while ((x1 ^ x2) & 0xFF000000) == 0:
                        if mode == 1:
                            if out_at >= dst.shape[0]:
                                scal[4] = jn  # what undo must give back
                                return -1  # the stream outgrew its buffer: the caller stores the file instead
                            dst[out_at] = (x2 >> 24) & 255
                            out_at += 1
                        else:
                            x = ((x << 8) & mask32) | (src[in_at] if in_at < src.shape[0] else 0)
                            in_at += 1
                        x1 = (x1 << 8) & mask32
                        x2 = ((x2 << 8) & mask32) | 255
                # learn
                err1 = (y << 12) - p1m
                err2 = (y << 12) - p2m
                err3 = (y << 12) - p3m
                for i in range(_N_IN):
                    w1[r1, i] += (inputs[i] * err1) >> 10
                    w2[r2, i] += (inputs[i] * err2) >> 10
                    w3[r3, i] += (inputs[i] * err3) >> 10
                errf = (y << 12) - pmix
                wf[rf, 0] += (dot1 * errf) >> 12
                wf[rf, 1] += (dot2 * errf) >> 12
                wf[rf, 2] += (256 * errf) >> 12
                wf[rf, 3] += (dot3 * errf) >> 12
                target = y << 16
                for i in range(_N_SM):
                    st = sts[i]
                    n = smn[i, st]
                    smp[i, st] += ((target - smp[i, st]) * rate[n]) >> 16
                    if n < _SM_LIMIT:
                        smn[i, st] = n + 1
                for i in range(_N_CTX):
                    tables[i, base[i] + node] = nxt[sts[i], y]
                t0[c0] = nxt[sts[_N_CTX], y]
                if mslot >= 0:
                    n = mcount[mslot]
                    mprob[mslot] += ((target - mprob[mslot]) * rate[n]) >> 16
                    if n < 255:
                        mcount[mslot] = n + 1
                g = (y << 16) + (y << 6) - y - y
                apm1[a1 + (wt >> 6)] += (g - apm1[a1 + (wt >> 6)]) >> 6
                if keep:
                    journal[jn, 0], journal[jn, 1], journal[jn, 2] = -2, a2 + (wt >> 6), apm2[a2 + (wt >> 6)]
                    jn += 1
                apm2[a2 + (wt >> 6)] += (g - apm2[a2 + (wt >> 6)]) >> 6
                c0 = (c0 << 1) | y
            if mode == 2:
                hist[pos] = c0 & 255
        scal[0], scal[1], scal[2], scal[3], scal[4] = word, word_prev, mptr, mlen, jn
        if mode == 1:
            if out_at + 4 > dst.shape[0]:
                return -1
            for _ in range(4):
                dst[out_at] = (x1 >> 24) & 255
                out_at += 1
                x1 = (x1 << 8) & mask32
        return out_at

    @numba.njit(cache=True, nogil=True)
    def undo(journal, n, tables, mtable, apm2):
        """Give back what a journaled run changed, newest first."""
        for k in range(n - 1, -1, -1):
            what, at = journal[k, 0], journal[k, 1]
            if what >= 0:
                lo, hi = journal[k, 2], journal[k, 3]
                for j in range(8):
                    tables[what, at + j] = (lo >> (8 * j)) & 255
                    tables[what, at + 8 + j] = (hi >> (8 * j)) & 255
            elif what == -1:
                mtable[at] = journal[k, 2]
            else:
                apm2[at] = journal[k, 2]

    return run, undo


_KERNELS = None


def _kernels():  # noqa: ANN202
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _kernel()
    return _KERNELS


def _apm(contexts: int) -> np.ndarray:
    row = np.array([int(_SQUASH[min(4095, max(0, (i - 16) * 128 + 2048))]) * 16 for i in range(33)], dtype=np.int32)
    return np.tile(row, contexts)


_NO_JOURNAL = np.zeros((0, 4), dtype=np.int64)
#: journal rows a coded byte may add: a bucket per model and nibble, a match-table entry, 8 SSE entries
_JOURNAL_PER_BYTE = 2 * _N_CTX + 1 + 8
#: the largest file coded on a journaled state (its journal: 27 rows of 32 bytes a byte, 57 MB at
#: 64 KB, where a copy of a primed state is about 165 MB and 30 ms)
_JOURNAL_MAX = 1 << 16


@dataclass
class _State:
    """Everything the model learns. A primed state is reused file after file: the large tables
    through a journal undone after each file, the small arrays copied."""

    tables: np.ndarray
    mtable: np.ndarray
    apm2: np.ndarray
    smp: np.ndarray
    smn: np.ndarray
    t0: np.ndarray
    mprob: np.ndarray
    mcount: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    wf: np.ndarray
    apm1: np.ndarray
    scal: np.ndarray

    @classmethod
    def new(cls, bits: int) -> _State:
        wf = np.zeros((8, 4), dtype=np.int64)
        wf[:, 0] = wf[:, 1] = wf[:, 3] = 21845
        return cls(
            tables=np.zeros((_N_CTX, 16 << bits), dtype=np.uint8),
            mtable=np.zeros(1 << _MATCH_BITS, dtype=np.int32),  # positions in the history
            apm2=_apm(1 << _APM2_BITS),
            smp=np.tile(_P1, (_N_SM, 1)).astype(np.int64),
            smn=np.zeros((_N_SM, 256), dtype=np.int64),
            t0=np.zeros(256, dtype=np.uint8),
            mprob=np.full(64 * 2, 32768, dtype=np.int64),
            mcount=np.zeros(64 * 2, dtype=np.int64),
            w1=np.full((4 * 256, _N_IN), 1 << 14, dtype=np.int64),
            w2=np.full((256 * 8, _N_IN), 1 << 14, dtype=np.int64),
            w3=np.full(((len(_ORDERS) + 1) * 256, _N_IN), 1 << 14, dtype=np.int64),
            wf=wf,
            apm1=_apm(256),
            scal=np.zeros(_SCALARS, dtype=np.int64),
        )

    def copy(self, large: bool = True) -> _State:
        """A copy (``large=False``: sharing the journaled tables, copying the rest)."""
        shared = ("tables", "mtable", "apm2")
        return _State(**{k: (v.copy() if large or k not in shared else v) for k, v in self.__dict__.items()})

    def run(self, hist: np.ndarray, start: int, end: int, src: np.ndarray, dst: np.ndarray, mode: int,
            journal: np.ndarray = _NO_JOURNAL) -> int:
        run, _ = _kernels()
        return int(run(hist, start, end, src, dst, mode, self.tables, self.smp, self.smn, self.t0, self.mtable,
                       self.mprob, self.mcount, self.w1, self.w2, self.w3, self.wf, self.apm1, self.apm2, self.scal,
                       journal, _NEXT, _TOTAL, _SQUASH, _STRETCH, _RATE))

    def undo(self, journal: np.ndarray) -> None:
        _, undo = _kernels()
        undo(journal, int(self.scal[4]), self.tables, self.mtable, self.apm2)


def _bits(n: int) -> int:
    """Buckets per model for ``n`` bytes: about four per byte (two nibbles, half the places free)."""
    return min(_MAX_BITS, max(_MIN_BITS, (4 * max(n, 1) - 1).bit_length()))


def _tag(sha256: str) -> int:
    return int(sha256[:8], 16)


class Primer:
    """A collection's primer text and the states the model ends in after it: each file coded with
    it starts from such a state. A state is made once (about 1 s for 256 KB) and lent to one file
    at a time: a small file's changes to its large tables are journaled and undone afterwards
    (milliseconds, where copying them would take tens); a file over 64 KB is coded on a copy; a
    file coded while every state is lent gets a state of its own, kept for the next."""

    #: primed states kept for reuse (each about 150 MB)
    KEEP = 2

    def __init__(self, text: bytes) -> None:
        self.text = bytes(text)
        self.sha256 = hashlib.sha256(self.text).hexdigest()
        self.tag = _tag(self.sha256)
        self.bits = _bits(len(self.text))
        self._free: list[_State] = []
        self._lock = threading.Lock()

    def _acquire(self) -> _State:
        with self._lock:
            if self._free:
                return self._free.pop()
        state = _State.new(self.bits)
        hist = np.frombuffer(self.text, dtype=np.uint8).copy()
        state.run(hist, 0, len(hist), hist[:0], np.zeros(0, dtype=np.uint8), 0)
        return state

    def _release(self, state: _State) -> None:
        with self._lock:
            if len(self._free) < self.KEEP:
                self._free.append(state)

    def code(self, hist: np.ndarray, n: int, src: np.ndarray, dst: np.ndarray, mode: int) -> int:
        """Run the primed model over the last ``n`` bytes of ``hist`` (the primer, then the file)."""
        lead = len(self.text)
        primed = self._acquire()
        if n > _JOURNAL_MAX:  # a larger file: a whole copy costs less than its journal
            state = primed.copy()
            self._release(primed)
            return state.run(hist, lead, lead + n, src, dst, mode)
        state = primed.copy(large=False)  # the small arrays copied, the large ones journaled
        journal = np.empty((n * _JOURNAL_PER_BYTE + 16, 4), dtype=np.int64)
        try:
            return state.run(hist, lead, lead + n, src, dst, mode, journal)
        finally:
            state.undo(journal)
            self._release(primed)


def cm2_compress(data: bytes, primer: Primer | None = None) -> bytes | None:
    n = len(data)
    lead = len(primer.text) if primer is not None else 0
    hist = np.empty(lead + n, dtype=np.uint8)
    if primer is not None:
        hist[:lead] = np.frombuffer(primer.text, dtype=np.uint8)
    hist[lead:] = np.frombuffer(data, dtype=np.uint8)
    dst = np.zeros(n + n // 8 + 64, dtype=np.uint8)  # never more than ~1.01x plus the coder's flush
    if primer is not None:
        bits, used = primer.bits, primer.code(hist, n, hist[:0], dst, 1)
    else:
        bits = _bits(n)
        used = _State.new(bits).run(hist, 0, n, hist[:0], dst, 1)
    if used < 0:
        return None
    return _HEADER.pack(n, bits, primer.tag if primer is not None else 0) + dst[:used].tobytes()


def cm2_decompress(stream: bytes, size: int | None = None, primer: Primer | None = None) -> bytes:
    """The bytes of a cm2 stream (one coded after a primer decodes only with that primer)."""
    if len(stream) < _HEADER.size:
        raise ValueError("cm2 payload cut short; the row is corrupt")
    n, bits, tag = _HEADER.unpack_from(stream)
    if size is not None and n > size:
        raise ValueError(f"cm2 payload claims {n:,} bytes, the row {size:,}; the row is corrupt")
    if not _MIN_BITS <= bits <= _MAX_BITS:
        raise ValueError("cm2 payload with impossible settings; the row is corrupt")
    if tag and (primer is None or primer.tag != tag):
        raise ValueError(f"this cm2 payload was coded after a primer ({tag:08x}) the archive's text model does not hold; "
                         "decode with the model the table records")
    src = np.frombuffer(stream, dtype=np.uint8, offset=_HEADER.size)
    out = np.zeros(0, dtype=np.uint8)
    if tag and primer is not None:
        lead = len(primer.text)
        hist = np.zeros(lead + n, dtype=np.uint8)
        hist[:lead] = np.frombuffer(primer.text, dtype=np.uint8)
        if bits != primer.bits:
            raise ValueError("cm2 payload's table size differs from its primer's; the row is corrupt")
        primer.code(hist, n, src, out, 2)
        return hist[lead:].tobytes()
    hist = np.zeros(n, dtype=np.uint8)
    _State.new(bits).run(hist, 0, n, src, out, 2)
    return hist.tobytes()


@register_file_codec("cm2")
class Cm2Codec(ClassicCodec):
    """The context-mixing coder above, unprimed: tried on text at the default effort, on every
    kind at max (see docs/benchmarks.md for its speed)."""

    def tried(self, kind: str, effort: str) -> bool:
        return effort == "max" or (effort == "default" and kind == "text")

    @classmethod
    def library(cls) -> str:
        return f"aec cm/2 (numba {version('numba')})"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        return cm2_compress(data)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        return cm2_decompress(stream, size)
