"""Images: PNG, JPEG, WebP (anything Pillow reads); RGB, grayscale, 16-bit grayscale and RGB; any size."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from aecore.containers import get_container
from aecore.containers.png import read_png16, write_png
from aecore.metrics import ms_ssim, psnr
from aecore.modalities.base import Modality, Sample, UnreadableInput
from aecore.modalities.info import Info
from aecore.registry import register_modality

__all__ = ["ImageInfo", "ImageModality"]

# height, width, channels, bits per sample of the original file
_INFO = struct.Struct("<IIBB")
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I")
# Decompression-bomb guard: Pillow's own default, stated here so the error names it.
MAX_PIXELS = 178_956_970


@dataclass(frozen=True, eq=False)
class ImageInfo(Info):
    """An image: ``shape`` is (height, width, channels of the file: 1 or 3), ``bits`` 8 or 16."""

    @property
    def positions(self) -> tuple[int, ...]:
        h, w, _ = self.shape
        return (h, w)

    def rate_unit(self) -> tuple[str, float]:
        h, w, _ = self.shape
        return "bpp", float(h * w)

    def pack(self) -> bytes:
        h, w, c = self.shape
        return _INFO.pack(h, w, c, self.bits)

    @classmethod
    def unpack(cls, data: bytes, version: int) -> tuple[ImageInfo, int]:
        h, w, c, bits = _INFO.unpack_from(data)
        return cls(shape=(h, w, c), bits=bits), _INFO.size


@register_modality("image")
class ImageModality(Modality):
    name = "image"
    gate_metric = ("psnr", 1)
    extensions = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
    default_model = "image-hyperprior"
    output_suffix = ".png"
    # Lossless mode rebuilds PNGs byte for byte; other formats are stored as they are.
    containers = ("png",)
    channels = 3
    spatial_dims = 2
    max_elements = 3 * MAX_PIXELS
    info_type = ImageInfo

    def load(self, data: bytes) -> Sample:
        if not data:
            raise UnreadableInput("empty file (0 bytes)")
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise UnreadableInput(f"image of {img.width}x{img.height} exceeds {MAX_PIXELS} pixels")
                img.load()
                bits = 16 if img.mode in _DEEP_MODES else 8
                deep_rgb = read_png16(data) if img.format == "PNG" and img.mode == "RGB" else None
                if deep_rgb is not None:  # 16-bit RGB PNG: Pillow reads it at 8 bits, this at 16
                    arr, bits, gray = deep_rgb.astype(np.float32) / 65535.0, 16, False
                elif bits == 16:  # 16-bit grayscale keeps its precision end to end
                    arr = np.clip(np.asarray(img, dtype=np.float32), 0, 65535) / 65535.0
                    gray = True
                else:
                    gray = img.mode in ("1", "L", "LA", "F")
                    img = img.convert("L" if gray else "RGB")
                    arr = np.asarray(img)  # uint8: scaled once, channel-first, below
                    img.close()
        except UnreadableInput:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UnreadableInput(f"not a readable image: {exc}") from None
        if gray:
            h, w = arr.shape
            # The model is 3-channel; grayscale is replicated and averaged back on restore.
            x = np.repeat(arr[None], 3, axis=0)
            c = 1
        else:
            h, w, c = arr.shape
            x = arr.transpose(2, 0, 1)
        if x.dtype == np.uint8:  # one float32 copy, scaled in place
            x = np.ascontiguousarray(x, dtype=np.float32)
            x *= np.float32(1.0 / 255.0)
        else:
            x = np.ascontiguousarray(x, dtype=np.float32)
        return Sample(x=x, info=ImageInfo(shape=(h, w, c), bits=bits))

    def training_patches(self, sample: Sample, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
        x = _pad_to_at_least(sample.x, size)
        _, h, w = x.shape
        out = np.empty((count, x.shape[0], size, size), dtype=np.float32)
        for i in range(count):
            top = int(rng.integers(0, h - size + 1))
            left = int(rng.integers(0, w - size + 1))
            out[i] = x[:, top : top + size, left : left + size]
        return out

    def thumbnail(self, sample: Sample, size: int) -> np.ndarray:
        img = Image.fromarray((sample.x.transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
        img = img.resize((size, size), Image.Resampling.BOX if min(img.size) >= size else Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 255.0

    def pad(self, sample: Sample, multiple: int) -> np.ndarray:
        _, h, w = sample.x.shape
        ph, pw = -h % multiple, -w % multiple
        if not (ph or pw):
            return sample.x
        # Edge padding keeps the border statistics close to the image; it is cropped on restore.
        return np.pad(sample.x, ((0, 0), (0, ph), (0, pw)), mode="edge")

    def restore(self, x_hat: np.ndarray, info: Info) -> bytes:
        h, w, c = info.shape
        x_hat = np.clip(x_hat[:, :h, :w], 0.0, 1.0)
        pixels = x_hat.mean(axis=0) if c == 1 else x_hat.transpose(1, 2, 0)
        return _png((pixels * ((1 << info.bits) - 1) + 0.5).astype(np.int64), info.bits)

    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        x_hat = np.clip(x_hat, 0.0, 1.0)
        out = {"psnr": psnr(x, x_hat)}
        similarity = ms_ssim(x, x_hat)
        if similarity is not None:  # images of 161 px and more on each side
            out["ms_ssim"] = similarity
        return out

    def exact_values(self, sample: Sample) -> np.ndarray:
        return _levels(sample.x, sample.info).transpose(1, 2, 0)

    def lossless_view(self, x_hat: np.ndarray, info: Info) -> np.ndarray:
        h, w, c = info.shape
        x_hat = np.clip(x_hat[:, :h, :w], 0.0, 1.0)
        return x_hat.mean(axis=0, keepdims=True) if c == 1 else x_hat

    def symbols(self, x: np.ndarray, info: Info) -> np.ndarray:
        return _levels(x, info).reshape(-1)

    def from_symbols(self, symbols: np.ndarray, info: Info) -> bytes:
        h, w, c = info.shape
        values = symbols.reshape(c, h, w).transpose(1, 2, 0)
        if info.exact is not None and info.exact.container:
            return get_container(info.exact.container).build(values, info.exact.recipe)
        return _png(values[..., 0] if c == 1 else values, info.bits)

    def _pil(self, sample: Sample) -> Image.Image:
        h, w, c = sample.info.shape
        img = Image.fromarray((np.clip(sample.x[:, :h, :w], 0, 1).transpose(1, 2, 0) * 255.0 + 0.5).astype(np.uint8))
        return img.convert("L") if c == 1 else img

    def classic_codecs(self, sample: Sample, lossless: bool = False) -> list[tuple[str, bytes, np.ndarray]]:
        if lossless:
            return self._lossless_codecs(sample)
        img, out = self._pil(sample), []
        for fmt, qualities in (("JPEG", (5, 10, 20, 40, 70, 90)), ("WEBP", (1, 5, 20, 50, 80, 95))):
            for q in qualities:
                buf = io.BytesIO()
                img.save(buf, format=fmt, quality=q)
                out.append((f"{fmt.lower()} q{q}", buf.getvalue(), self.load(buf.getvalue()).x))
        return out

    def _lossless_codecs(self, sample: Sample) -> list[tuple[str, bytes, np.ndarray]]:
        values = self.exact_values(sample)
        deep = sample.info.bits == 16
        pixels = values.astype(np.uint16 if deep else np.uint8)
        if deep and pixels.shape[-1] == 3:  # Pillow writes no 16-bit RGB: our Paeth-filtered PNG instead
            return [("png", write_png(pixels, 16), sample.x)]
        img = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        out = []
        for name, fmt, options in (("png optimize", "PNG", {"optimize": True}),
                                   ("webp lossless", "WEBP", {"lossless": True, "quality": 100, "method": 6})):
            if deep and fmt == "WEBP":
                continue  # WebP has no 16-bit samples
            buf = io.BytesIO()
            img.save(buf, format=fmt, **options)
            out.append((name, buf.getvalue(), sample.x))
        return out

    def preview(self, sample: Sample, x_hat: np.ndarray, reference: tuple[str, np.ndarray] | None = None
                ) -> dict[str, Any]:
        h, w, _ = sample.info.shape
        as_rgb = lambda x: np.clip(x[:3, :h, :w], 0, 1).transpose(1, 2, 0)  # noqa: E731
        panels = [("original", as_rgb(sample.x)), ("aec", as_rgb(x_hat))]
        if reference is not None:
            panels.append((reference[0], as_rgb(reference[1])))
        return {"kind": "image", "panels": panels}


def _levels(x: np.ndarray, info: Info) -> np.ndarray:
    """The exact pixel values ``[c, h, w]`` (0 .. 2**bits - 1) of a loaded image."""
    h, w, c = info.shape
    return np.rint(x[:c, :h, :w] * ((1 << info.bits) - 1)).astype(np.int32)


def _png(pixels: np.ndarray, bits: int) -> bytes:
    """A PNG of integer pixels ``[h, w]`` (grey) or ``[h, w, 3]``; 16-bit RGB through our own
    writer, since Pillow writes none."""
    if bits == 16 and pixels.ndim == 3:
        return write_png(pixels.astype(np.uint16), 16)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint16 if bits == 16 else np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _pad_to_at_least(x: np.ndarray, size: int) -> np.ndarray:
    _, h, w = x.shape
    if h >= size and w >= size:
        return x
    return np.pad(x, ((0, 0), (0, max(0, size - h)), (0, max(0, size - w))), mode="edge")
