"""Classic lossy image codecs with a learned post-filter: the classic codec carries the bits, a
small denoising autoencoder removes its artefacts at decode (as VVC's neural post-filters and
Opus 1.5's NoLACE do).

    encode: pixels -> classic codec at a setting -> bitstream
    decode: bitstream -> classic decoder -> post-filter(decoded pixels, setting) -> pixels

The filter (:class:`PostFilterNet`) is a residual convolutional net on the decoded picture:
pixel-unshuffled by 4 (a 4x4 block per position), a few 3x3 convolutions, shuffled back and added
to its input; conditioned on the codec's setting (its index among the codec's settings, 0..1, as
one more input plane), so one net serves every rate. Its last layer starts at zero: an untrained
filter is the identity.

Payload (``avif-pf``, ``jxl-pf``, ``webp-pf``): ``0xAC | id``, the image header, then
``u16 weights tag | u8 setting index``, then the classic codec's own bitstream — a reader without
aec (or without the filter) still gets the picture from the bitstream alone. The tag (the first
two bytes of the weights' sha256) names the filter the encoder saw; a decode with other weights
refuses in one line instead of restoring another picture.

The filter runs in float32 (channels-last, torch's threads): unlike the learned codec's exact
synthesis, a restore on another machine may differ by one level in rare pixels; the classic
bitstream itself decodes exactly. Weights ship in the zoo (``aecore/zoo/weights/postfilter-*.
safetensors``, ``recipes/train_postfilter.py``); a codec whose weights are missing is no candidate.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aecore.archive.codec import CodecUnavailable, register_file_codec
from aecore.archive.lossy import AvifCodec, JxlCodec, LossyImageCodec, WebpCodec

__all__ = ["POSTFILTER_WEIGHTS", "PostFilterNet", "PostFilteredCodec", "apply_postfilter", "load_postfilter",
           "postfilter_metadata", "save_postfilter"]

POSTFILTER_WEIGHTS = Path(__file__).resolve().parent.parent / "zoo" / "weights"
#: rows of at most this many pixels are filtered at once; taller pictures in overlapping stripes
#: (bounded memory: 64 channels at 1/16 of the pixels, float32)
_STRIPE_ROWS = 512
#: leaky ReLUs: with plain ones, 51-58 of the last layer's 64 channels died in training (the AVIF
#: and JPEG XL filters then gained 0.16 and 0.01 dB)
_SLOPE = 0.1
_OVERLAP = 40  # > the net's receptive radius (8 layers of 3x3 at 1/4 resolution: 34 px)


class PostFilterNet(nn.Module):
    """Decoded picture ``[B, 3, H, W]`` in 0..1 and a setting ``[B]`` in 0..1 -> the filtered
    picture (H and W multiples of ``scale``)."""

    def __init__(self, channels: int = 64, blocks: int = 6, scale: int = 4) -> None:
        super().__init__()
        self.config = {"channels": channels, "blocks": blocks, "scale": scale}
        self.scale = scale
        planes = 3 * scale * scale
        self.head = nn.Conv2d(planes + 1, channels, 3, padding=1)
        self.body = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks)])
        self.tail = nn.Conv2d(channels, planes, 3, padding=1)
        for conv in (self.head, *self.body):  # He's initialisation for the leaky ReLUs that follow
            nn.init.kaiming_normal_(conv.weight, a=_SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor, setting: torch.Tensor) -> torch.Tensor:
        y = F.pixel_unshuffle(x, self.scale)
        cond = setting.to(y.dtype).view(-1, 1, 1, 1).expand(y.shape[0], 1, y.shape[2], y.shape[3])
        h = F.leaky_relu(self.head(torch.cat([y, cond], 1)), _SLOPE)
        for conv in self.body:
            h = F.leaky_relu(conv(h), _SLOPE)
        return x + F.pixel_shuffle(self.tail(h), self.scale)


def save_postfilter(net: PostFilterNet, path: Path, codec: str, extra: dict[str, Any]) -> None:
    """The net's weights as float16 safetensors, with its config, codec and recipe in the metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()}
    meta = {"config": json.dumps(net.config), "codec": codec, "extra": json.dumps(extra)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)


def postfilter_metadata(path: Path) -> dict[str, Any]:
    """A weights file's config, codec and recipe record (what ``save_postfilter`` wrote)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    return {"config": json.loads(meta["config"]), "codec": meta["codec"], **json.loads(meta.get("extra", "{}"))}


@functools.cache
def load_postfilter(path: Path) -> tuple[PostFilterNet, bytes]:
    """``(net in eval mode, 2-byte tag)`` of a weights file (cached per path)."""
    from safetensors import safe_open

    blob = path.read_bytes()
    with safe_open(str(path), framework="pt") as f:
        config = json.loads(f.metadata()["config"])
        state = {k: f.get_tensor(k).float() for k in f.keys()}  # noqa: SIM118 - safe_open has no iteration
    net = PostFilterNet(**config)
    net.load_state_dict(state)
    net.eval().to(memory_format=torch.channels_last)
    return net, hashlib.sha256(blob).digest()[:2]


def apply_postfilter(net: PostFilterNet, pixels: np.ndarray, setting: float) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> the filtered uint8 ``[H, W, 3]``; tall pictures in overlapping stripes."""
    h, w, _ = pixels.shape
    s = net.scale
    out = np.empty_like(pixels)
    cond = torch.tensor([float(setting)])
    top = 0
    with torch.inference_mode():
        while top < h:
            bottom = min(h, top + _STRIPE_ROWS)
            lo, hi = max(0, top - _OVERLAP), min(h, bottom + _OVERLAP)
            part = pixels[lo:hi]
            ph, pw = (-part.shape[0]) % s, (-w) % s
            x = torch.from_numpy(np.array(part))  # a copy: decoders give read-only arrays
            x = x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
            if ph or pw:
                x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
            y = net(x.contiguous(memory_format=torch.channels_last), cond)
            y = y[0, :, top - lo : top - lo + bottom - top, :w].mul(255.0).round_().clamp_(0, 255)
            out[top:bottom] = y.to(torch.uint8).permute(1, 2, 0).numpy()
            top = bottom
    return out


class PostFilteredCodec(LossyImageCodec):
    """A classic image codec (``base``) whose decode is post-filtered by the zoo's net for it."""

    base: ClassVar[type[LossyImageCodec]]
    efforts = ("default", "max")
    learned = True  # a learned stage: no model of the archive's, its own weights (model_modality stays None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.settings = cls.base.settings  # the base codec's settings, searched as its own

    @classmethod
    def weights_path(cls) -> Path:
        return POSTFILTER_WEIGHTS / f"postfilter-{cls.base.codec_id}.safetensors"

    @classmethod
    def library(cls) -> str:
        return f"{cls.base.library()} + aec post-filter"

    def tried(self, kind: str, effort: str) -> bool:
        return super().tried(kind, effort) and self.weights_path().is_file()

    def takes(self, x: np.ndarray, info: Any, effort: str) -> bool:
        return self.base().takes(x, info, effort)

    def _index(self, setting: float) -> int:
        settings = self.base.settings
        return min(range(len(settings)), key=lambda i: abs(float(settings[i]) - float(setting)))

    def condition(self, index: int) -> float:
        """The net's setting input: the index's position among the base codec's settings."""
        return index / max(1, len(self.base.settings) - 1)

    def compress_pixels(self, pixels: np.ndarray, setting: float, effort: str) -> bytes:
        _, tag = load_postfilter(self.weights_path())
        return tag + bytes([self._index(setting)]) + self.base().compress_pixels(pixels, setting, effort)

    def decompress_pixels(self, stream: bytes) -> np.ndarray:
        if len(stream) < 3:
            raise ValueError(f"{self.codec_id} stream is truncated; the row is corrupt")
        path = self.weights_path()
        if not path.is_file():
            raise CodecUnavailable(f"codec {self.codec_id!r}: its post-filter weights ({path.name}) are not in this "
                                   "installation; reinstall aec")
        net, tag = load_postfilter(path)
        if stream[:2] != tag:
            raise CodecUnavailable(f"codec {self.codec_id!r}: the row was written with post-filter weights "
                                   f"{stream[:2].hex()}, this installation has {tag.hex()}; install the aec release "
                                   "that wrote the archive")
        index = stream[2]
        if index >= len(self.base.settings):
            raise ValueError(f"{self.codec_id} stream names setting {index} of {len(self.base.settings)}; "
                             "the row is corrupt")
        decoded = self.base().decompress_pixels(stream[3:])
        return apply_postfilter(net, decoded, self.condition(index))


@register_file_codec("avif-pf")
class AvifPostFiltered(PostFilteredCodec):
    base = AvifCodec


@register_file_codec("jxl-pf")
class JxlPostFiltered(PostFilteredCodec):
    base = JxlCodec


@register_file_codec("webp-pf")
class WebpPostFiltered(PostFilteredCodec):
    base = WebpCodec
