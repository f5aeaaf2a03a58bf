"""Files <-> payloads: a modality, a model and a latent codec working together.

Payload layout (everything decode needs besides the model)::

    u8 version (2) | u8 flags (bit 0: lossless) | modality info (pack_info) | u32 pieces
    per piece:  u32 n | n bytes of range-coded latents
                [lossless: u32 m | m bytes of range-coded symbols under the decoder's distribution]

Long 1-D inputs (audio, text) are cut into pieces of ``model.chunk`` positions along the last
axis, so memory stays bounded whatever the length. In lossless mode each piece's exact symbols
are coded under the probabilities the decoder predicts from the piece's own latents, computed
one piece at a time on one thread so encoder and decoder compute them identically; every
lossless payload is decoded again at encode time and must restore the input byte for byte.

The fixed-size query latent is separate: the quantized latent of the sample resized to the
model's native size, so every row of a dataset has the same latent shape.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import constriction
import numpy as np
import torch

from aecore.codecs import FactorizedCategoricalCodec
from aecore.modalities import Modality, Sample
from aecore.models import ConvAutoEncoder

__all__ = ["Compressor", "Encoded", "PAYLOAD_VERSION"]

PAYLOAD_VERSION = 2
_LOSSLESS = 1
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class Encoded:
    payload: bytes
    latent: np.ndarray  # float32 [prod(query_latent_shape)]
    quality: dict[str, float] | None  # filled for samples asked to be measured


@contextmanager
def _one_thread():
    """Residual probabilities must be bit-identical at encode and decode: one thread, one piece."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Compressor:
    def __init__(self, modality: Modality, model: ConvAutoEncoder, codec: FactorizedCategoricalCodec,
                 device: str = "cpu", lossless: bool | None = None, architecture: str | None = None) -> None:
        self.modality = modality
        #: the registry name of the model class (recorded in dataset metadata)
        self.architecture = architecture
        self.model = model.to(device).eval()
        self.codec = codec
        self.device = device
        self.lossless = getattr(modality, "lossless_default", False) if lossless is None else lossless
        if self.lossless and type(modality).symbols is Modality.symbols:
            raise ValueError(f"lossless mode is not available for {modality.name} yet; set lossless: false")

    @property
    def query_latent_shape(self) -> tuple[int, ...]:
        return self.model.latent_shape((self.model.native_size,) * self.modality.spatial_dims)

    def _pieces(self, x: np.ndarray) -> list[np.ndarray]:
        chunk = getattr(self.model, "chunk", None)
        if not chunk or x.shape[-1] <= chunk:
            return [x]
        return [x[..., i : i + chunk] for i in range(0, x.shape[-1], chunk)]

    def _pad(self, x: np.ndarray) -> np.ndarray:
        return self.modality.pad(Sample(x=x), self.model.stride)

    @torch.inference_mode()
    def encode(self, samples: Sequence[Sample], measure: Sequence[bool] | None = None) -> list[Encoded]:
        """Encode samples; pieces of equal padded shape share one forward pass."""
        measure = measure or [False] * len(samples)
        pieces = [self._pieces(s.x) for s in samples]
        flat = [(i, k, self._pad(p)) for i, ps in enumerate(pieces) for k, p in enumerate(ps)]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for j, (_, _, x) in enumerate(flat):
            groups[x.shape].append(j)
        y_hats: list[np.ndarray] = [np.empty(0)] * len(flat)
        for idx in groups.values():
            x = torch.from_numpy(np.stack([flat[j][2] for j in idx])).to(self.device)
            y = torch.round(self.model.g_a(x)).cpu().numpy()
            for k, j in enumerate(idx):
                y_hats[j] = y[k]
        thumbs = np.stack([self.modality.thumbnail(s, self.model.native_size) for s in samples])
        latents = torch.round(self.model.g_a(torch.from_numpy(thumbs).to(self.device))).cpu().numpy()
        out = []
        j = 0
        for i, s in enumerate(samples):
            parts = [_U32.pack(len(pieces[i]))]
            x_hats = []
            for piece in pieces[i]:
                y_hat = y_hats[j]
                j += 1
                words = self.codec.compress(y_hat)
                parts += [_U32.pack(len(words)), words]
                if self.lossless or measure[i]:
                    x_hat = self._synthesize(y_hat)
                    x_hats.append(x_hat[..., : piece.shape[-1]])
                    if self.lossless:
                        info = _piece_info(s.info, piece.shape[1:], len(pieces[i]))
                        residual = self._code_symbols(self.modality.lossless_view(x_hat, info),
                                                      self.modality.symbols(piece, info))
                        parts += [_U32.pack(len(residual)), residual]
            flags = _LOSSLESS if self.lossless else 0
            payload = bytes([PAYLOAD_VERSION, flags]) + self.modality.pack_info(s.info) + b"".join(parts)
            if self.lossless and self.decode(payload)[0] != self.modality.from_symbols(self.modality.symbols(s.x, s.info), s.info):
                raise RuntimeError("lossless verification failed: the decoder did not restore the input exactly")
            quality = None
            if measure[i]:
                quality = self._quality(s, x_hats, payload)
            out.append(Encoded(payload=payload, latent=latents[i].reshape(-1).astype(np.float32), quality=quality))
        return out

    def _quality(self, s: Sample, x_hats: list[np.ndarray], payload: bytes) -> dict[str, float]:
        unit, count = self.modality.rate_unit(s.info)
        if self.lossless:
            quality = {"exact": 1.0}
        else:
            x_hat = np.concatenate(x_hats, axis=-1) if x_hats else np.zeros_like(s.x)
            ext = tuple(slice(0, e) for e in self.modality.extent(s.info))
            quality = self.modality.quality(s.x[(slice(None), *ext)], x_hat[(slice(None), *ext)])
        quality[unit] = 8.0 * len(payload) / count
        return quality

    def _synthesize(self, y_hat: np.ndarray) -> np.ndarray:
        with _one_thread():
            return self.model.g_s(torch.from_numpy(y_hat[None]).to(self.device))[0].cpu().numpy()

    def _blocks(self, view: np.ndarray):
        with _one_thread():
            for p in self.model.probability_blocks(torch.from_numpy(np.ascontiguousarray(view))):
                # Quantized to a fixed grid so the coder's tables depend on nothing but these
                # integers; C order, since constriction reads the buffer row by row.
                yield np.ascontiguousarray(np.floor(p.cpu().numpy() * 65536.0) + 1.0, dtype=np.float32)

    def _code_symbols(self, view: np.ndarray, symbols: np.ndarray) -> bytes:
        encoder = constriction.stream.queue.RangeEncoder()
        start = 0
        for probs in self._blocks(view):
            block = symbols[start : start + len(probs)].astype(np.int32)
            encoder.encode(block, constriction.stream.model.Categorical(perfect=False), probs)
            start += len(probs)
        return encoder.get_compressed().astype("<u4").tobytes()

    def _decode_symbols(self, view: np.ndarray, data: bytes) -> np.ndarray:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
        out = [decoder.decode(constriction.stream.model.Categorical(perfect=False), probs) for probs in self._blocks(view)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int32)

    @torch.inference_mode()
    def decode(self, payload: bytes) -> tuple[bytes, np.ndarray | None, dict[str, Any]]:
        """Payload -> (restored file bytes, reconstruction cropped to the original extent or None, info)."""
        if len(payload) < 2 or payload[0] != PAYLOAD_VERSION:
            version = payload[0] if payload else None
            raise ValueError(f"payload version {version} is not {PAYLOAD_VERSION}; decode with the aec that wrote it")
        lossless = bool(payload[1] & _LOSSLESS)
        info, used = self.modality.unpack_info(payload[2:])
        pos = 2 + used
        (count,) = _U32.unpack_from(payload, pos)
        pos += 4
        extent = self.modality.extent(info)
        spans = _spans(extent, getattr(self.model, "chunk", None), count)
        x_hats, symbols = [], []
        for span in spans:
            (n,) = _U32.unpack_from(payload, pos)
            pos += 4
            padded = tuple(max(self.model.stride, -(-e // self.model.stride) * self.model.stride) for e in span)
            y_hat = self.codec.decompress(payload[pos : pos + n], self.model.latent_shape(padded))
            pos += n
            x_hat = self._synthesize(y_hat)
            x_hats.append(x_hat[..., : span[-1]])
            if lossless:
                (m,) = _U32.unpack_from(payload, pos)
                pos += 4
                piece_info = _piece_info(info, span, len(spans))
                symbols.append(self._decode_symbols(self.modality.lossless_view(x_hat, piece_info), payload[pos : pos + m]))
                pos += m
        if lossless:
            data = self.modality.from_symbols(np.concatenate(symbols) if symbols else np.zeros(0, np.int32), info)
            return data, None, info
        x_hat = np.concatenate(x_hats, axis=-1)
        return self.modality.restore(x_hat, info), x_hat[(slice(None), *(slice(0, e) for e in extent))], info


def _spans(extent: tuple[int, ...], chunk: int | None, count: int) -> list[tuple[int, ...]]:
    """The extents of the pieces an input of ``extent`` was cut into."""
    if count <= 1 or not chunk:
        return [extent]
    total = extent[-1]
    return [(*extent[:-1], min(chunk, total - i)) for i in range(0, total, chunk)]


def _piece_info(info: dict[str, Any], extent: tuple[int, ...], pieces: int) -> dict[str, Any]:
    """The info of one piece of a chunked input (its own extent); the whole input's otherwise."""
    return info if pieces <= 1 else {**info, "shape": tuple(extent)}
