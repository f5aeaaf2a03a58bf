"""Lossy classic codecs behind the codec contract, and the lossy best-codec choice: WebP, JPEG XL
and AVIF at the smallest setting whose quality is at least the learned codec's.

    sample, learned payload, learned PSNR
        -> for each codec the effort tries: bisect its settings (small file -> large) for the
           first whose decoded pixels reach the learned PSNR
        -> the smallest payload wins; the learned one is kept when it is smaller

A lossy codec is not exact (``exact = False``): it never competes in an exact archive
(``encode`` gives None), and its decode gives back the picture the modality restores (a PNG of
the decoded pixels, as the learned lossy decode does). Its payload is ``0xAC | id`` (as every
classic payload), the image header (``ImageInfo``: height, width, channels, bits), then the
codec's own bitstream — a reader without aec gets the picture from the bitstream alone.
Only 8-bit images have classic lossy candidates (16-bit ones stay with the learned codec).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import ClassVar

import numpy as np

from aecore.archive.codec import FILE_CODECS, CodecContext, FileCodec, classic_payload, register_file_codec, split_classic
from aecore.metrics import psnr

__all__ = ["ESTIMATE_MARGIN_DB", "LossyChoice", "LossyImageCodec", "best_lossy", "lossy_candidates"]

#: how far above the learned codec's estimated PSNR (``Compressor.encode(estimate=True)``, the
#: float synthesis) a classic codec must reach: decode's exact synthesis differed from it by at
#: most 0.033 dB (mean 0.005) on 48 training photos and 0.021 dB on 24 held-out ones (zoo:image-small)
ESTIMATE_MARGIN_DB = 0.05


class LossyImageCodec(FileCodec):
    """A classic lossy image codec: 8-bit RGB pixels at one of its ``settings`` -> bitstream."""

    exact = False
    kinds = ("image",)
    #: the codec's settings, from the smallest (worst) file to the largest (best)
    settings: ClassVar[Sequence[float]]
    #: per effort, the most pixels a picture may have for this codec to be tried (none: any)
    max_pixels: ClassVar[dict[str, int]] = {}

    def takes(self, pixels: int, effort: str) -> bool:
        limit = self.max_pixels.get(effort)
        return limit is None or pixels <= limit

    @abstractmethod
    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        """``pixels`` uint8 ``[H, W, 3]`` -> the codec's bitstream."""

    @abstractmethod
    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        """The bitstream -> uint8 ``[H, W, 3]``."""

    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        return None  # not exact: never a candidate of an exact archive

    def payload(self, stream: bytes, header: bytes) -> bytes:
        return classic_payload(self.codec_id, header + stream)

    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        from aecore.modalities import get_modality

        pixels, info = self.decode_pixels(payload)
        x_hat = pixels.transpose(2, 0, 1).astype(np.float32) / 255.0
        return get_modality("image").restore(x_hat, info)

    def decode_pixels(self, payload: bytes) -> tuple[np.ndarray, object]:
        """``(pixels uint8 [H, W, 3], ImageInfo)`` of a payload this codec wrote, checked against its header."""
        from aecore.modalities.image import MAX_PIXELS, ImageInfo

        found = split_classic(payload)
        if found is None or found[0] != self.codec_id:
            raise ValueError(f"not a {self.codec_id} payload; the row is corrupt")
        info, used = ImageInfo.unpack(found[1], 0)
        h, w, _ = info.shape
        if h * w > MAX_PIXELS:
            raise ValueError(f"{self.codec_id} payload claims {h}x{w} pixels, over the image limit; not decoded")
        pixels = self.decompress_pixels(found[1][used:])
        if pixels.shape != (h, w, 3):
            raise ValueError(f"{self.codec_id} bitstream decodes to {pixels.shape}, its header says {(h, w, 3)}; "
                             "the row is corrupt")
        return pixels, info


def _pillow_library(fmt: str) -> str:
    from PIL import features

    return f"Pillow {version('pillow')} ({fmt} {features.version(fmt.lower()) or '?'})"


def _pillow_decode(stream: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(stream)) as img:
        return np.asarray(img.convert("RGB"))


@register_file_codec("webp")
class WebpCodec(LossyImageCodec):
    settings = tuple(range(0, 101))  # Pillow's quality
    efforts = ("fast", "default", "max")

    @classmethod
    def library(cls) -> str:
        return _pillow_library("WEBP")

    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "WEBP", quality=int(setting), method=6 if effort == "max" else 4)
        return buf.getvalue()

    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        return _pillow_decode(stream)


@register_file_codec("avif")
class AvifCodec(LossyImageCodec):
    settings = tuple(range(0, 101))  # Pillow's quality
    efforts = ("default", "max")

    @classmethod
    def library(cls) -> str:
        return _pillow_library("AVIF")

    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "AVIF", quality=int(setting), speed=4 if effort == "max" else 8)
        return buf.getvalue()

    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        return _pillow_decode(stream)


@register_file_codec("jxl")
class JxlCodec(LossyImageCodec):
    # Butteraugli distance, large (worst) to small (best), geometric from 25 to 0.1
    settings = tuple(float(d) for d in np.geomspace(25.0, 0.1, 48))
    efforts = ("default", "max")
    # libjxl's encoder (effort 7) takes ~150 bytes and ~0.5 us per pixel per try: a 9 MP
    # picture cost 1.4 GB and 5 s a try; above 4 MP only the max effort tries it
    max_pixels = {"default": 4 * 2**20}

    @classmethod
    def library(cls) -> str:
        import imagecodecs

        return f"imagecodecs {imagecodecs.__version__} (libjxl {imagecodecs.jpegxl_version()})"

    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        import imagecodecs

        return bytes(imagecodecs.jpegxl_encode(pixels, distance=setting, effort=9 if effort == "max" else 7))

    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        import imagecodecs

        pixels = imagecodecs.jpegxl_decode(stream)
        return pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)


def lossy_candidates(kind: str, effort: str) -> list[LossyImageCodec]:
    return [cls() for cls in FILE_CODECS.values()
            if issubclass(cls, LossyImageCodec) and cls().tried(kind, effort)]


@dataclass(frozen=True)
class LossyChoice:
    codec: str
    payload: bytes
    psnr: float
    setting: float | None = None


def _first_ok(n: int, ok: Callable[[int], bool], hint: int | None = None) -> int | None:
    """The first index in ``range(n)`` where ``ok`` holds (assumed monotone), or None. From a
    ``hint`` (the setting the previous file needed) it gallops outwards, then bisects: a few probes
    when files of a collection need similar settings, ~2 log2(n) at worst."""
    if hint is None or not 0 <= hint < n:
        lo, hi = -1, n - 1  # ok(lo) is False (or lo is -1), ok(hi) is to be checked
        if not ok(hi):
            return None
    elif ok(hint):
        lo, hi, step = -1, hint, 1
        while hi - step > -1:
            if not ok(hi - step):
                lo = hi - step
                break
            hi, step = hi - step, step * 2
    elif hint == n - 1:
        return None
    else:
        lo, step = hint, 1
        while True:
            j = min(lo + step, n - 1)
            if ok(j):
                hi = j
                break
            if j == n - 1:
                return None
            lo, step = j, step * 2
    while hi - lo > 1:  # ok(hi), not ok(lo)
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def best_lossy(x: np.ndarray, header: bytes, bits: int, target_psnr: float, learned_bytes: int, effort: str,
               kind: str = "image", hints: dict[str, int] | None = None) -> tuple[LossyChoice | None, dict[str, int]]:
    """``(winner, sizes)``: the smallest classic payload of ``x`` (float ``[3, H, W]`` in [0, 1])
    whose decoded PSNR is at least ``target_psnr``, if it is smaller than ``learned_bytes`` (else
    None: the learned payload stays); and each codec's smallest payload that met the target.
    ``hints``: per codec, the setting index to search from; updated with the ones found."""
    if bits != 8 or not np.isfinite(target_psnr):
        return None, {}
    pixels = np.ascontiguousarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))
    best: LossyChoice | None = None
    sizes: dict[str, int] = {}
    for codec in lossy_candidates(kind, effort):
        if not codec.takes(pixels.shape[0] * pixels.shape[1], effort):
            continue
        tried: dict[int, tuple[bytes, float]] = {}

        def ok(i: int, codec: LossyImageCodec = codec, tried: dict = tried) -> bool:
            stream = codec.compress_pixels(pixels, codec.settings[i], effort)
            quality = psnr(pixels, codec.decompress_pixels(stream), peak=255.0)  # 8-bit values: no float copies
            tried[i] = (stream, quality)
            return quality >= target_psnr

        try:
            i = _first_ok(len(codec.settings), ok, None if hints is None else hints.get(codec.codec_id))
        except Exception:  # noqa: BLE001 - a codec that cannot take this picture (size limits) is no candidate
            continue
        if i is None:
            continue
        if hints is not None:
            hints[codec.codec_id] = i
        stream, quality = tried[i]
        payload = codec.payload(stream, header)
        sizes[codec.codec_id] = len(payload)
        if len(payload) < learned_bytes and (best is None or len(payload) < len(best.payload)):
            best = LossyChoice(codec.codec_id, payload, quality, codec.settings[i])
    return best, sizes
