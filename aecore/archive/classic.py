"""Classic codecs for any file: stored, zstd (with the collection's dictionary), brotli, xz, PPMd.

Each wraps a well-kept library (``zstandard``, ``brotli``, ``lzma``, ``pyppmd``). Decoders
never give back more than the row's recorded size (``size``): a payload that inflates past it
is refused, not inflated (a bomb stops at the size the row says).
"""

from __future__ import annotations

import lzma
import struct
import sys
from importlib.metadata import version

from aecore.archive.codec import CodecContext, FileCodec, classic_payload, register_file_codec, split_classic

__all__ = ["ClassicCodec", "PayloadTooLarge", "x86_executable"]


class PayloadTooLarge(ValueError):
    """A payload that decodes past the size its row records."""


def _bounded(out: bytes, size: int | None) -> bytes:
    if size is not None and len(out) > size:
        raise PayloadTooLarge(f"payload decodes past the row's {size:,} bytes; the row is corrupt")
    return out


class ClassicCodec(FileCodec):
    """A codec whose payload is its id and one stream (``aecore.archive.codec``)."""

    solid = True  # a general-purpose codec: its files may join a solid block (aecore.archive.solid)

    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        stream = self.compress(data, ctx)
        return None if stream is None else classic_payload(self.codec_id, stream)

    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        found = split_classic(payload)
        if found is None or found[0] != self.codec_id:
            raise ValueError(f"not a {self.codec_id} payload; the row is corrupt")
        return _bounded(self.decompress(found[1], ctx, size), size)

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        raise NotImplementedError

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        raise NotImplementedError


@register_file_codec("stored")
class StoredCodec(ClassicCodec):
    """The file as it is: the floor no row is ever stored above (plus a few header bytes)."""

    def compress(self, data: bytes, ctx: CodecContext) -> bytes:
        return data

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        return stream


@register_file_codec("zstd")
class ZstdCodec(ClassicCodec):
    """zstd -19 (fast effort: -9), with the collection's trained dictionary when the job has one
    (then the id is ``zstd-dict``, and decode needs the table's dictionary)."""

    dictionary = False

    @classmethod
    def library(cls) -> str:
        return f"zstandard {version('zstandard')}"

    def _dict(self, ctx: CodecContext):  # noqa: ANN202
        import zstandard

        return zstandard.ZstdCompressionDict(ctx.zstd_dictionary) if self.dictionary else None

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        import zstandard

        if self.dictionary and not ctx.zstd_dictionary:
            return None
        level = 9 if ctx.effort == "fast" else 19
        kwargs = {"dict_data": self._dict(ctx)} if self.dictionary else {}
        return zstandard.ZstdCompressor(level=level, write_content_size=True, **kwargs).compress(data)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import zstandard

        if self.dictionary and not ctx.zstd_dictionary:
            raise ValueError("this row is coded with the collection's zstd dictionary, which the table lacks")
        kwargs = {"dict_data": self._dict(ctx)} if self.dictionary else {}
        # read one byte past the row's size at most: a bomb stops there instead of inflating whole
        with zstandard.ZstdDecompressor(**kwargs).stream_reader(stream) as reader:
            return reader.read(size + 1) if size is not None else reader.readall()


@register_file_codec("zstd-dict")
class ZstdDictCodec(ZstdCodec):
    dictionary = True


@register_file_codec("brotli")
class BrotliCodec(ClassicCodec):
    """brotli -11 with a 16 MB window."""

    kinds = ("text", "bytes")  # media files are compressed already: JPEG XL / FLAC (or zstd) take them
    efforts = ("default", "max")

    @classmethod
    def library(cls) -> str:
        return f"brotli {version('brotli')}"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes:
        import brotli

        return brotli.compress(data, quality=11, lgwin=24)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import brotli

        d = brotli.Decompressor()
        out = d.process(stream, output_buffer_limit=(size + 1) if size is not None else 1 << 62)
        if not d.is_finished():
            raise PayloadTooLarge("brotli payload decodes past the row's size (or is cut short); the row is corrupt")
        return out


@register_file_codec("xz")
class XzCodec(ClassicCodec):
    """xz -9e (LZMA2): strongest on binaries; on text PPMd and brotli win (tried there at max effort)."""

    efforts = ("default", "max")

    def tried(self, kind: str, effort: str) -> bool:
        return effort == "max" or (effort == "default" and kind in ("bytes", "image", "audio"))

    @classmethod
    def library(cls) -> str:
        return f"liblzma (Python {sys.version.split()[0]} lzma)"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes:
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE, preset=9 | lzma.PRESET_EXTREME)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        d = lzma.LZMADecompressor()
        out = d.decompress(stream, max_length=(size + 1) if size is not None else -1)
        if not d.eof:
            raise PayloadTooLarge("xz payload decodes past the row's size (or is cut short); the row is corrupt")
        return out


def x86_executable(data: bytes) -> bool:
    """An ELF or PE file for x86 or x86-64: its machine code gains from the x86 branch filter."""
    if data[:4] == b"\x7fELF" and len(data) >= 20 and data[5] == 1:  # little-endian ELF
        return struct.unpack_from("<H", data, 18)[0] in (0x03, 0x3E)
    if data[:2] == b"MZ" and len(data) >= 64:
        pe = struct.unpack_from("<I", data, 60)[0]
        return data[pe : pe + 4] == b"PE\0\0" and struct.unpack_from("<H", data, pe + 4)[0] in (0x14C, 0x8664)
    return False


@register_file_codec("xz-x86")
class XzX86Codec(XzCodec):
    """xz -9e after the x86 branch-call-jump filter (BCJ, as 7-Zip and xz apply to executables):
    call and jump targets made absolute, so repeated calls look alike (about 5 % off x86 ELF and PE files)."""

    def tried(self, kind: str, effort: str) -> bool:
        return kind == "bytes" and effort in ("default", "max")

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        if not x86_executable(data):
            return None
        filters = [{"id": lzma.FILTER_X86}, {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE, filters=filters)


_PPMD = struct.Struct("<QBI")  # length, order, memory (bytes)


@register_file_codec("ppmd")
class PpmdCodec(ClassicCodec):
    """PPMd var. H (7-Zip's), order 6 with 16 MB (max effort: order 8, 64 MB): strong on text."""

    efforts = ("default", "max")

    def tried(self, kind: str, effort: str) -> bool:
        return effort == "max" or (effort == "default" and kind in ("text", "bytes"))

    @classmethod
    def library(cls) -> str:
        return f"pyppmd {version('pyppmd')}"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes:
        import pyppmd

        order, mem = (8, 64 << 20) if ctx.effort == "max" else (6, 16 << 20)
        enc = pyppmd.Ppmd7Encoder(order, mem)
        return _PPMD.pack(len(data), order, mem) + enc.encode(data) + enc.flush(endmark=False)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import pyppmd

        length, order, mem = _PPMD.unpack_from(stream)
        if size is not None and length > size:
            raise PayloadTooLarge(f"ppmd payload claims {length:,} bytes, the row {size:,}; the row is corrupt")
        if not 2 <= order <= 64 or not 1 << 11 <= mem <= 1 << 28:
            raise ValueError("ppmd payload with impossible settings; the row is corrupt")
        return pyppmd.Ppmd7Decoder(order, mem).decode(stream[_PPMD.size :], length)
