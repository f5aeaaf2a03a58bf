"""Lossy classic codecs behind the codec contract, and the lossy best-codec choice: each codec at
the smallest setting whose quality is at least the learned codec's — WebP, JPEG XL and AVIF for
photos (PSNR), Opus for sound (SNR at the model's rate, where the learned codec is measured).

    sample, learned payload, learned quality
        -> for each codec the effort tries: bisect its settings (small file -> large) for the
           first whose decode reaches the learned quality
        -> the smallest payload wins; the learned one is kept when it is smaller

A lossy codec is not exact (``exact = False``): it never competes in an exact archive
(``encode`` gives None), and its decode gives back the file the modality restores (a PNG of
the decoded pixels, a 16-bit WAV of the decoded sound, as the learned lossy decode does). Its
payload is ``0xAC | id`` (as every classic payload), the modality's header (``ImageInfo`` /
``AudioInfo``), then the codec's own bitstream — a reader without aec gets the picture or the
sound from the bitstream alone (a WebP/AVIF/JPEG XL file, an Ogg Opus file).
Only 8-bit images have classic lossy candidates (16-bit ones stay with the learned codec).
"""

from __future__ import annotations

import io
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any, ClassVar

import numpy as np

from aecore.archive.codec import FILE_CODECS, CodecContext, FileCodec, classic_payload, register_file_codec, split_classic
from aecore.metrics import psnr

__all__ = ["ESTIMATE_MARGIN", "ESTIMATE_MARGIN_DB", "LossyChoice", "LossyCodec", "LossyImageCodec", "OpusCodec",
           "best_lossy", "lossy_candidates"]

#: how far above the learned codec's estimated PSNR (``Compressor.encode(estimate=True)``, the
#: float synthesis) a classic codec must reach: decode's exact synthesis differed from it by at
#: most 0.033 dB (mean 0.005) on 48 training photos and 0.021 dB on 24 held-out ones (zoo:image-small)
ESTIMATE_MARGIN_DB = 0.05
#: the same margin per quality metric (dB); audio's SNR: see OpusCodec
ESTIMATE_MARGIN = {"psnr": ESTIMATE_MARGIN_DB, "snr": 0.05}


class LossyCodec(FileCodec):
    """A classic lossy codec of one modality: the sample, at one of its ``settings``, ->
    bitstream; its decode measured with the modality's quality ``metric`` (higher is better)."""

    exact = False
    #: the codec's settings, from the smallest (worst) file to the largest (best)
    settings: ClassVar[Sequence[float]]
    #: the quality the search compares with the learned codec's (a key of the modality's quality)
    metric: ClassVar[str]

    def takes(self, x: np.ndarray, info: Any, effort: str) -> bool:
        """Whether the codec is a candidate for this sample at this effort."""
        return True

    @abstractmethod
    def prepare(self, x: np.ndarray, info: Any) -> Any:
        """The codec's input from a sample (``x`` and ``info`` as the modality loads them); the
        same for every codec of a family, so it is made once per sample."""

    @abstractmethod
    def compress(self, prepared: Any, setting: float, effort: str) -> bytes:
        """``prepared`` at ``setting`` -> the codec's bitstream."""

    @abstractmethod
    def quality(self, prepared: Any, stream: bytes) -> float:
        """The ``metric`` of the bitstream's decode against ``prepared``."""

    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        return None  # not exact: never a candidate of an exact archive

    def payload(self, stream: bytes, header: bytes) -> bytes:
        return classic_payload(self.codec_id, header + stream)


class LossyImageCodec(LossyCodec):
    """A classic lossy image codec: 8-bit RGB pixels at one of its ``settings`` -> bitstream."""

    kinds = ("image",)
    metric = "psnr"
    #: per effort, the most pixels a picture may have for this codec to be tried (none: any)
    max_pixels: ClassVar[dict[str, int]] = {}

    def takes(self, x: np.ndarray, info: Any, effort: str) -> bool:
        limit = self.max_pixels.get(effort)
        return info.bits == 8 and (limit is None or x.shape[1] * x.shape[2] <= limit)

    def prepare(self, x: np.ndarray, info: Any) -> np.ndarray:
        return np.ascontiguousarray((np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0))

    def compress(self, prepared: np.ndarray, setting: float, effort: str) -> bytes:
        return self.compress_pixels(prepared, setting, effort)

    def quality(self, prepared: np.ndarray, stream: bytes) -> float:
        return psnr(prepared, self.decompress_pixels(stream), peak=255.0)  # 8-bit values: no float copies

    @abstractmethod
    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        """``pixels`` uint8 ``[H, W, 3]`` -> the codec's bitstream."""

    @abstractmethod
    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        """The bitstream -> uint8 ``[H, W, 3]``."""

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


@register_file_codec("opus")
class OpusCodec(LossyCodec):
    """Opus (libopus through libsndfile, in an Ogg file) on the sound the learned codec sees:
    each channel at the model's rate (16 kHz), measured by SNR there, restored as the learned
    lossy decode is (resampled to the file's rate, 16-bit WAV, digital silence kept silent).
    Settings: the bit rate per channel, 6-256 kbit/s (libsndfile's compression level ``l`` sets
    ``(1 - l) * 250 + 6``); above ~128 kbit/s its SNR at 16 kHz stops growing (~34 dB)."""

    kinds = ("audio",)
    metric = "snr"
    settings = (6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 256)
    #: Opus in Ogg (RFC 7845) maps at most 8 channels without an application-defined layout
    max_channels = 8

    @classmethod
    def library(cls) -> str:
        import soundfile as sf

        return f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})"

    def takes(self, x: np.ndarray, info: Any, effort: str) -> bool:
        return 1 <= int(info.shape[1]) <= self.max_channels and info.resampled > 0

    def prepare(self, x: np.ndarray, info: Any) -> tuple[np.ndarray, Any]:
        c = int(info.shape[1])
        return np.ascontiguousarray(x[0, : c * info.resampled].reshape(c, info.resampled)), info

    def compress(self, prepared: tuple[np.ndarray, Any], setting: float, effort: str) -> bytes:
        import soundfile as sf

        from aecore.modalities.audio import MODEL_RATE

        ref, _ = prepared
        buf = io.BytesIO()
        sf.write(buf, ref.T, MODEL_RATE, format="OGG", subtype="OPUS", compression_level=1.0 - (setting - 6) / 250)
        return compact_opus_tags(buf.getvalue())

    def decompress(self, stream: bytes, channels: int) -> np.ndarray:
        """The bitstream -> float32 ``[channels, frames]`` at the model's rate (every frame it holds)."""
        import soundfile as sf

        dec, _ = sf.read(io.BytesIO(stream), dtype="float32", always_2d=True)
        if dec.shape[1] != channels:
            raise ValueError(f"opus bitstream holds {dec.shape[1]} channels, its header says {channels}; the row is corrupt")
        return np.ascontiguousarray(dec.T)

    def quality(self, prepared: tuple[np.ndarray, Any], stream: bytes) -> float:
        from aecore.modalities import get_modality

        ref, info = prepared
        dec = self.decompress(stream, ref.shape[0])[:, : ref.shape[1]]
        dec = np.pad(dec, ((0, 0), (0, ref.shape[1] - dec.shape[1])))
        x_hat = info.finish(dec.reshape(1, -1))
        return get_modality("audio").quality(ref.reshape(1, -1), x_hat)["snr"]

    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        from aecore.modalities import get_modality
        from aecore.modalities.audio import MODEL_RATE, AudioInfo
        from aecore.payload import PAYLOAD_VERSION

        found = split_classic(payload)
        if found is None or found[0] != self.codec_id:
            raise ValueError(f"not an {self.codec_id} payload; the row is corrupt")
        info, used = AudioInfo.unpack(found[1], PAYLOAD_VERSION)
        frames, channels = info.shape
        if not 1 <= channels <= self.max_channels or abs(info.resampled * info.rate - frames * MODEL_RATE) > 2 * info.rate:
            raise ValueError(f"{self.codec_id} payload header is inconsistent ({channels} channels, {frames} frames "
                             f"at {info.rate} Hz, {info.resampled} at {MODEL_RATE} Hz); the row is corrupt")
        dec = self.decompress(found[1][used:], channels)  # bounded by the bitstream, not by the header's claim
        if dec.shape[1] != info.resampled:
            raise ValueError(f"{self.codec_id} bitstream holds {dec.shape[1]} frames, its header says {info.resampled}; "
                             "the row is corrupt")
        x_hat = dec.reshape(1, -1)
        return get_modality("audio").restore(info.finish(x_hat), info)


def _ogg_crc(data: bytes) -> int:
    """Ogg's page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, initial 0)."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def compact_opus_tags(stream: bytes) -> bytes:
    """The Ogg Opus file with its comment header cut to the vendor string and no comments.
    libsndfile pads that header (page 2, RFC 7845 section 5.2) with ~800 zero bytes so tags
    can be edited in place: a quarter of a 4-s clip at 6 kbit/s. Any stream not laid out as
    expected (the header alone on its page, in one packet) is returned as it is."""
    if stream[:4] != b"OggS" or len(stream) < 28:
        return stream
    first = 27 + stream[26] + sum(stream[27 : 27 + stream[26]])  # where page 2 starts
    if stream[first : first + 4] != b"OggS" or len(stream) < first + 27:
        return stream
    nsegs = stream[first + 26]
    lacing = stream[first + 27 : first + 27 + nsegs]
    body_at = first + 27 + nsegs
    body = stream[body_at : body_at + sum(lacing)]
    if (not body.startswith(b"OpusTags") or len(body) < 16 or stream[first + 5] != 0 or not lacing
            or lacing[-1] == 255):
        return stream
    vendor = int.from_bytes(body[8:12], "little")
    if 12 + vendor + 4 > len(body):
        return stream
    tags = body[: 12 + vendor] + bytes(4)  # the vendor string, zero comments
    segments = bytes([255] * (len(tags) // 255) + [len(tags) % 255])
    page = bytearray(stream[first : first + 26] + bytes([len(segments)]) + segments + tags)
    page[22:26] = bytes(4)
    page[22:26] = _ogg_crc(bytes(page)).to_bytes(4, "little")
    return stream[:first] + bytes(page) + stream[body_at + len(body) :]


def lossy_candidates(kind: str, effort: str) -> list[LossyCodec]:
    return [cls() for cls in FILE_CODECS.values() if issubclass(cls, LossyCodec) and cls().tried(kind, effort)]


@dataclass(frozen=True)
class LossyChoice:
    codec: str
    payload: bytes
    #: the codec's decode measured by its ``metric`` (the modality's quality: PSNR, SNR)
    quality: float
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


def best_lossy(x: np.ndarray, info: Any, target: float, learned_bytes: int, effort: str, kind: str = "image",
               hints: dict[str, int] | None = None) -> tuple[LossyChoice | None, dict[str, int]]:
    """``(winner, sizes)``: the smallest classic payload of a sample (``x`` and ``info`` as its
    modality loads them) whose decode's quality (each codec's ``metric``) is at least ``target``,
    if it is smaller than ``learned_bytes`` (else None: the learned payload stays); and each
    codec's smallest payload that met the target. ``hints``: per codec, the setting index to
    search from; updated with the ones found."""
    if not np.isfinite(target):
        return None, {}
    header = info.pack()
    best: LossyChoice | None = None
    sizes: dict[str, int] = {}
    prepared: dict[type, Any] = {}  # one input per family (the photo's 8-bit pixels once, not per codec)
    for codec in lossy_candidates(kind, effort):
        if not codec.takes(x, info, effort):
            continue
        family = type(codec).prepare
        if family not in prepared:
            prepared[family] = codec.prepare(x, info)
        source = prepared[family]
        tried: dict[int, tuple[bytes, float]] = {}

        def ok(i: int, codec: LossyCodec = codec, tried: dict = tried, source: Any = source) -> bool:
            stream = codec.compress(source, codec.settings[i], effort)
            quality = codec.quality(source, stream)
            tried[i] = (stream, quality)
            return quality >= target

        try:
            i = _first_ok(len(codec.settings), ok, None if hints is None else hints.get(codec.codec_id))
        except Exception:  # noqa: BLE001 - a codec that cannot take this sample (size limits) is no candidate
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
