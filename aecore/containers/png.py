"""PNG rebuilt byte for byte: chunks kept verbatim, pixels re-filtered and re-deflated.

A PNG is its chunks around one zlib stream of filtered scanlines. Given the exact pixels,
what else decides the bytes is small: the chunks before and after the image data (IHDR, gAMA,
tEXt, IEND, ... kept as they are), the filter type of every row (read from the file), the
sizes the stream was cut into IDAT chunks, and the deflate settings that made the stream.
Those settings are found by recompressing with zlib until the output matches (the candidates
are narrowed by the level hint in the zlib header and tried in order of how common they are;
libpng, Pillow and most writers use zlib). Files whose stream zlib cannot reproduce, interlaced
files, palettes, alpha and bit depths below 8 are not rebuilt here: the caller keeps those
files as they are.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from aecore.containers.base import Container, Exact, register_container

__all__ = ["PngContainer", "read_png16", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHUNK = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
_HEAD = struct.Struct("<BBIIBBBB")  # bits, channels, width, height, level, mem level, strategy, window bits
_COLOUR_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # greyscale, truecolour, and each with alpha
_STRATEGIES = (zlib.Z_FILTERED, zlib.Z_DEFAULT_STRATEGY, zlib.Z_RLE, zlib.Z_HUFFMAN_ONLY, zlib.Z_FIXED)
_FEED = 1 << 16
# The settings that matched last: files of one collection are usually written alike.
_last_match: list[tuple[int, int, int]] = [(6, 9, zlib.Z_FILTERED)]


def _chunks(data: bytes):
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = _CHUNK.unpack_from(data, pos)
        yield pos, length, kind
        pos += 12 + length


def _levels(flevel: int, strategy: int) -> tuple[int, ...]:
    """Levels whose zlib header carries ``flevel`` (zlib's deflate.c: level_flags)."""
    if strategy in (zlib.Z_HUFFMAN_ONLY, zlib.Z_RLE):
        return (1, 6, 9, 0, 2, 3, 4, 5, 7, 8) if flevel == 0 else ()
    return {0: (1, 0), 1: (5, 4, 3, 2), 2: (6,), 3: (9, 7, 8)}[flevel]


def _deflate(raw: bytes, level: int, mem_level: int, strategy: int, wbits: int, expect: bytes | None = None) -> bytes | None:
    """zlib stream of ``raw``; with ``expect``, None as soon as the output departs from it."""
    z = zlib.compressobj(level, zlib.DEFLATED, wbits, mem_level, strategy)
    out, pos = [], 0
    for i in range(0, len(raw), _FEED):
        part = z.compress(raw[i : i + _FEED])
        if expect is not None and part != expect[pos : pos + len(part)]:
            return None
        out.append(part)
        pos += len(part)
    out.append(z.flush())
    stream = b"".join(out)
    return None if expect is not None and stream != expect else stream


def _inflate(stream: bytes, expected: int) -> bytes | None:
    """The filtered scanlines, never more than one byte past what the header promises (a stream
    that inflates further is not this image's, and must not fill memory)."""
    try:
        return zlib.decompressobj().decompress(stream, expected + 1)
    except zlib.error:
        return None


def _filter(rows: np.ndarray, bpp: int, kinds: np.ndarray) -> bytes:
    """Scanlines ``[h, row bytes]`` filtered with each row's type (PNG spec, section 9)."""
    h, n = rows.shape
    r = rows.astype(np.int16)
    up = np.vstack([np.zeros((1, n), np.int16), r[:-1]])
    left = np.hstack([np.zeros((h, bpp), np.int16), r[:, :-bpp]])
    up_left = np.hstack([np.zeros((h, bpp), np.int16), up[:, :-bpp]])
    out = np.empty((h, n + 1), np.uint8)
    out[:, 0] = kinds
    for kind in np.unique(kinds):
        sel = kinds == kind
        a, b, c, x = left[sel], up[sel], up_left[sel], r[sel]
        if kind == 0:
            f = x
        elif kind == 1:
            f = x - a
        elif kind == 2:
            f = x - b
        elif kind == 3:
            f = x - (a + b) // 2
        elif kind == 4:
            p = a + b - c
            pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
            f = x - np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        else:
            raise ValueError(f"unknown PNG filter type {kind}")
        out[sel, 1:] = (f & 0xFF).astype(np.uint8)
    return out.tobytes()


def _scanlines(values: np.ndarray, bits: int) -> np.ndarray:
    """Pixels ``[h, w, c]`` -> scanline bytes ``[h, w * c * bits / 8]`` (16-bit big-endian)."""
    h = values.shape[0]
    dtype = ">u2" if bits == 16 else np.uint8
    return np.ascontiguousarray(values.astype(dtype)).view(np.uint8).reshape(h, -1)


def _header(data: bytes) -> tuple[list, int, int, int, int] | None:
    """``(chunks, width, height, bits, channels)`` of a non-interlaced greyscale or RGB PNG of 8
    or 16 bits; None for any other file."""
    if not data.startswith(_SIGNATURE):
        return None
    chunks = list(_chunks(data))
    if not chunks or chunks[0][2] != b"IHDR":
        return None
    w, h, bits, colour, _, _, interlace = _IHDR.unpack_from(data, chunks[0][0] + 8)
    c = _COLOUR_CHANNELS.get(colour)
    if c is None or bits not in (8, 16) or interlace:
        return None
    return chunks, w, h, bits, c


def _chunk(kind: bytes, body: bytes) -> bytes:
    return _CHUNK.pack(len(body), kind) + body + struct.pack(">I", zlib.crc32(kind + body))


def read_png16(data: bytes) -> np.ndarray | None:
    """Pixels ``[h, w, c]`` (uint16) of a 16-bit greyscale or RGB, non-interlaced PNG; None for
    any other file. Pillow reads 16-bit RGB at 8 bits; this keeps all 16."""
    header = _header(data)
    if header is None or header[3] != 16:
        return None
    import imagecodecs

    chunks, w, h, _, c = header
    try:  # libpng through imagecodecs: a 100-megapixel file in seconds, not a Python loop per pixel
        pixels = np.asarray(imagecodecs.png_decode(data))
    except Exception:  # noqa: BLE001 - a file libpng refuses is not a 16-bit PNG aec reads
        return None
    if pixels.dtype != np.uint16 or pixels.size != h * w * c:
        return None
    return pixels.reshape(h, w, c)


def write_png(values: np.ndarray, bits: int) -> bytes:
    """A PNG of pixels ``[h, w, c]`` (c = 1 or 3; 8 or 16 bits), Paeth-filtered, zlib level 6: for
    what Pillow cannot write (16-bit RGB)."""
    h, w, c = values.shape
    colour = {1: 0, 3: 2}[c]
    rows = _scanlines(values, bits)
    stream = _deflate(_filter(rows, c * bits // 8, np.full(h, 4, np.uint8)), 6, 8, zlib.Z_DEFAULT_STRATEGY, 15)
    return (_SIGNATURE + _chunk(b"IHDR", _IHDR.pack(w, h, bits, colour, 0, 0, 0)) + _chunk(b"IDAT", stream)
            + _chunk(b"IEND", b""))


@register_container("png")
class PngContainer(Container):
    name = "png"

    def parse(self, data: bytes, values: np.ndarray | None = None) -> Exact | None:
        header = None if values is None else _header(data)
        if header is None:
            return None
        chunks, w, h, bits, c = header
        if values.shape != (h, w, c):
            return None
        idat = [i for i, (_, _, kind) in enumerate(chunks) if kind == b"IDAT"]
        if not idat or idat != list(range(idat[0], idat[-1] + 1)):
            return None
        first, last = chunks[idat[0]], chunks[idat[-1]]
        stream = b"".join(data[p + 8 : p + 8 + n] for p, n, _ in (chunks[i] for i in idat))
        rows = _scanlines(values, bits)
        raw = _inflate(stream, h * (rows.shape[1] + 1))
        if raw is None or len(raw) != h * (rows.shape[1] + 1) or len(stream) < 2:
            return None
        kinds = np.frombuffer(raw, np.uint8)[:: rows.shape[1] + 1].copy()
        if kinds.max(initial=0) > 4 or _filter(rows, max(1, c * bits // 8), kinds) != raw:
            return None
        settings = self._find_deflate(raw, stream)
        if settings is None:
            return None
        head = _HEAD.pack(bits, c, w, h, *settings)
        prefix, suffix = data[: first[0]], data[last[0] + 12 + last[1] :]
        sizes = np.array([chunks[i][1] for i in idat], "<u4")
        body = b"".join([head, struct.pack("<III", len(prefix), len(suffix), len(sizes)), prefix, suffix,
                         sizes.tobytes(), kinds.tobytes()])
        return Exact(self.name, zlib.compress(body, 9), bits)

    def _find_deflate(self, raw: bytes, stream: bytes) -> tuple[int, int, int, int] | None:
        cmf, flg = stream[0], stream[1]
        if cmf & 0x0F != 8 or flg & 0x20:  # not deflate, or a preset dictionary
            return None
        wbits, flevel = (cmf >> 4) + 8, flg >> 6
        tried = set()
        candidates = _last_match + [(level, mem, s) for s in _STRATEGIES for level in _levels(flevel, s) for mem in (9, 8)]
        for level, mem, strategy in candidates:
            if (level, mem, strategy) in tried:
                continue
            tried.add((level, mem, strategy))
            if _deflate(raw, level, mem, strategy, wbits, expect=stream) is not None:
                _last_match[:] = [(level, mem, strategy)]
                return level, mem, strategy, wbits
        return None

    def bits(self, recipe: bytes) -> int:
        bits, *_ = _HEAD.unpack_from(_inflate_recipe(recipe, _HEAD.size, whole=False))
        return bits

    def build(self, values: np.ndarray, recipe: bytes) -> bytes:
        # the recipe holds the file's chunks around its pixels: never more than a bounded multiple of them
        body = _inflate_recipe(recipe, RECIPE_SLACK + RECIPE_PER_VALUE * int(np.asarray(values).size))
        bits, c, w, h, level, mem, strategy, wbits = _HEAD.unpack_from(body)
        n_prefix, n_suffix, n_sizes = struct.unpack_from("<III", body, _HEAD.size)
        pos = _HEAD.size + 12
        prefix, suffix = body[pos : pos + n_prefix], body[pos + n_prefix : pos + n_prefix + n_suffix]
        pos += n_prefix + n_suffix
        sizes = np.frombuffer(body, "<u4", n_sizes, pos)
        kinds = np.frombuffer(body, np.uint8, h, pos + 4 * n_sizes)
        rows = _scanlines(np.asarray(values).reshape(h, w, c), bits)
        stream = _deflate(_filter(rows, max(1, c * bits // 8), kinds), level, mem, strategy, wbits)
        out, start = [prefix], 0
        for size in sizes.tolist():
            piece = stream[start : start + size]
            out.append(_chunk(b"IDAT", piece))
            start += size
        if start != len(stream):
            raise ValueError("PNG recipe does not match the pixels")
        return b"".join(out) + suffix


#: a recipe (header, ancillary chunks, IDAT sizes, filter kinds) inflates to at most this plus
#: this many bytes per pixel value: a deflate bomb in a payload stops there, not at 1000:1
RECIPE_SLACK = 1 << 20
RECIPE_PER_VALUE = 4


def _inflate_recipe(data: bytes, limit: int, whole: bool = True) -> bytes:
    """zlib-inflate at most ``limit`` bytes; ``whole``: the stream must end within them."""
    d = zlib.decompressobj()
    out = d.decompress(data, limit)
    if whole and (d.unconsumed_tail or not d.eof):
        raise ValueError(f"PNG recipe inflates past {limit:,} bytes; the payload is corrupt")
    return out
