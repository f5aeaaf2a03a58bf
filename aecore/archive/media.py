"""Classic codecs for media files, byte-exact: JPEG XL for JPEG and PNG photos, FLAC for WAV.

- ``jxl-jpeg``: JPEG XL's lossless JPEG transcode (libjxl through ``imagecodecs``): about 17 %
  smaller, and ``jpegxl_decode_jpeg`` gives back the very JPEG bytes.
- ``jxl-png``: the PNG's pixels (grey, RGB, either with alpha; 8 or 16 bits) coded by JPEG XL
  lossless, beside the container recipe (:mod:`aecore.containers.png`) that rebuilds the PNG
  byte for byte around them.
- ``flac-wav``: the WAV's PCM coded by FLAC -8 (libsndfile through ``soundfile``), beside the WAV
  recipe (:mod:`aecore.containers.wav`) that rebuilds the header and trailing chunks.
"""

from __future__ import annotations

import io
import struct
from importlib.metadata import version

import numpy as np

from aecore.archive.classic import ClassicCodec
from aecore.archive.codec import CodecContext, register_file_codec
from aecore.containers import get_container

__all__ = ["FlacWavCodec", "JxlJpegCodec", "JxlPngCodec", "split_recipe", "wav_pcm16", "with_recipe"]

_U32 = struct.Struct("<I")
_SHAPE = struct.Struct("<IIBB")  # h, w, c, bits


def wav_pcm16(data: bytes, max_channels: int = 8) -> tuple[np.ndarray, bytes] | None:
    """A 16-bit PCM WAV of 1 to ``max_channels`` channels and at least one frame: its signed
    samples ``[channels, frames]`` (int64) and the recipe that rebuilds the file around them;
    None for any other file (the WAV codecs do not apply)."""
    exact = get_container("wav").parse(data)
    if (exact is None or exact.bits != 16 or exact.values is None or exact.values.shape[1] == 0
            or not 1 <= exact.values.shape[0] <= max_channels):
        return None
    return exact.values.astype(np.int64) - 32768, exact.recipe


def with_recipe(recipe: bytes, coded: bytes) -> bytes:
    """A transcode's stream: the container recipe, length-prefixed, then the coded values."""
    return _U32.pack(len(recipe)) + recipe + coded


def split_recipe(stream: bytes) -> tuple[bytes, bytes]:
    """``(recipe, coded)`` of a stream ``with_recipe`` wrote."""
    n = _U32.unpack_from(stream)[0]
    return stream[4 : 4 + n], stream[4 + n :]


def _jxl_library() -> str:
    import imagecodecs

    return f"imagecodecs {imagecodecs.__version__} (libjxl {imagecodecs.jpegxl_version()})"


def _effort(ctx: CodecContext) -> int:
    return {"fast": 3, "default": 7, "max": 9}.get(ctx.effort, 7)


@register_file_codec("jxl-jpeg")
class JxlJpegCodec(ClassicCodec):
    solid = False  # a transcode of this one file's content, never part of a solid block
    kinds = ("image",)

    @classmethod
    def library(cls) -> str:
        return _jxl_library()

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        import imagecodecs

        if data[:3] != b"\xff\xd8\xff":
            return None
        try:
            return bytes(imagecodecs.jpegxl_encode_jpeg(data))
        except Exception:  # noqa: BLE001 - a JPEG libjxl cannot transcode: other codecs take it
            return None

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpegxl_decode_jpeg(stream))


@register_file_codec("jxl-png")
class JxlPngCodec(ClassicCodec):
    solid = False  # a transcode of this one file's content, never part of a solid block
    kinds = ("image",)

    @classmethod
    def library(cls) -> str:
        return _jxl_library()

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        import imagecodecs

        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return None
        try:  # libpng: greyscale, RGB and both with alpha, 8 or 16 bits (palette PNGs have no recipe)
            values = np.asarray(imagecodecs.png_decode(data))
        except Exception:  # noqa: BLE001 - a PNG libpng refuses: other codecs take it
            return None
        if values.ndim == 2:
            values = values[..., None]
        png = get_container("png")
        exact = png.parse(data, values)
        if exact is None or not png.rebuilds(data, values, exact.recipe):
            return None
        h, w, c = values.shape
        pixels = values.astype(np.uint16 if exact.bits > 8 else np.uint8)
        coded = imagecodecs.jpegxl_encode(pixels[..., 0] if c == 1 else pixels, lossless=True, effort=_effort(ctx))
        return _SHAPE.pack(h, w, c, exact.bits) + _U32.pack(len(exact.recipe)) + exact.recipe + bytes(coded)

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import imagecodecs

        h, w, c, bits = _SHAPE.unpack_from(stream)
        n = _U32.unpack_from(stream, _SHAPE.size)[0]
        at = _SHAPE.size + _U32.size
        recipe, coded = stream[at : at + n], stream[at + n :]
        if size is not None and h * w * c > 8 * max(size, 1) * 1024:  # far past any PNG's deflate ratio
            raise ValueError(f"payload claims {h}x{w}x{c} pixels for a {size:,}-byte file; the row is corrupt")
        values = np.asarray(imagecodecs.jpegxl_decode(coded)).reshape(h, w, c)
        return get_container("png").build(values, recipe)


@register_file_codec("flac-wav")
class FlacWavCodec(ClassicCodec):
    solid = False  # a transcode of this one file's content, never part of a solid block
    kinds = ("audio",)

    @classmethod
    def library(cls) -> str:
        import soundfile as sf

        return f"soundfile {version('soundfile')} ({sf.__libsndfile_version__})"

    def compress(self, data: bytes, ctx: CodecContext) -> bytes | None:
        import soundfile as sf

        pcm = wav_pcm16(data)
        if pcm is None:
            return None
        samples, recipe = pcm
        buf = io.BytesIO()
        sf.write(buf, samples.T.astype(np.int16), 8000, format="FLAC", subtype="PCM_16",  # [frames, channels]
                 compression_level=0.5 if ctx.effort == "fast" else 1.0)
        return with_recipe(recipe, buf.getvalue())

    def decompress(self, stream: bytes, ctx: CodecContext, size: int | None) -> bytes:
        import soundfile as sf

        recipe, coded = split_recipe(stream)
        info = sf.info(io.BytesIO(coded))
        if size is not None and info.frames * info.channels * 2 > size:
            raise ValueError(f"payload claims {info.frames:,} frames for a {size:,}-byte file; the row is corrupt")
        frames, _ = sf.read(io.BytesIO(coded), dtype="int16", always_2d=True)
        return get_container("wav").build(frames.T.astype(np.int64) + 32768, recipe)
