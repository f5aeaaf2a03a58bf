"""WAV (RIFF, integer PCM of 8 or 16 bits) rebuilt byte for byte around its samples.

Every byte before and after the sample data (the RIFF header, ``fmt ``, ``LIST`` and any other
chunk, a pad byte) is kept as it is; the data chunk is the interleaved samples, little-endian
(8-bit unsigned, 16-bit signed), rebuilt from the exact values. The values are unsigned levels
``0 .. 2**bits - 1`` per channel (a 16-bit sample ``s`` is the level ``s + 32768``). Float,
24- and 32-bit PCM, compressed WAV and RF64 are not rebuilt here: the caller keeps those files
as they are.
"""

from __future__ import annotations

import struct

import numpy as np

from aecore.containers.base import Container, Exact, register_container

__all__ = ["WavContainer"]

_HEAD = struct.Struct("<BHII")  # bits, channels, prefix bytes, suffix bytes
_PCM, _EXTENSIBLE = 1, 0xFFFE


def _chunks(data: bytes):
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        yield kind, pos + 8, size
        pos += 8 + size + (size & 1)


@register_container("wav")
class WavContainer(Container):
    name = "wav"

    def parse(self, data: bytes, values: np.ndarray | None = None) -> Exact | None:
        if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
            return None
        fmt = data_at = None
        for kind, start, size in _chunks(data):
            if kind == b"fmt " and size >= 16:
                fmt = struct.unpack_from("<HHIIHH", data, start)
                if fmt[0] == _EXTENSIBLE and size >= 40 and data[start + 24 : start + 26] == b"\x01\x00":
                    fmt = (_PCM, *fmt[1:])
            elif kind == b"data":
                data_at = (start, size)
                break
        if fmt is None or data_at is None:
            return None
        tag, channels, _, _, align, bits = fmt
        start, size = data_at
        if tag != _PCM or bits not in (8, 16) or channels < 1 or align != channels * bits // 8:
            return None
        if size % align or start + size > len(data):
            return None
        body = np.frombuffer(data, "<i2" if bits == 16 else np.uint8, size // (bits // 8), start)
        levels = body.astype(np.int32).reshape(-1, channels).T + (32768 if bits == 16 else 0)
        prefix, suffix = data[:start], data[start + size :]
        return Exact(self.name, _HEAD.pack(bits, channels, len(prefix), len(suffix)) + prefix + suffix, bits,
                     np.ascontiguousarray(levels))

    def bits(self, recipe: bytes) -> int:
        bits, channels, _, _ = _HEAD.unpack_from(recipe)
        return bits

    def build(self, values: np.ndarray, recipe: bytes) -> bytes:
        bits, channels, n_prefix, n_suffix = _HEAD.unpack_from(recipe)
        prefix = recipe[_HEAD.size : _HEAD.size + n_prefix]
        suffix = recipe[_HEAD.size + n_prefix : _HEAD.size + n_prefix + n_suffix]
        levels = np.asarray(values, np.int64).reshape(channels, -1).T
        body = (levels - 32768).astype("<i2") if bits == 16 else levels.astype(np.uint8)
        return prefix + body.tobytes() + suffix
