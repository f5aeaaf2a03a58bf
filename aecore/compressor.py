"""Files <-> payloads: a modality, a model and its latent codec working together.

The payload layout is in :mod:`aecore.payload`. Long 1-D inputs (audio, text) are cut into
pieces of ``model.chunk`` positions along the last axis; large images run through the transforms
in tiles (:mod:`aecore.tiling`). In lossy mode a model that runs in tiles analyses and
synthesizes a long input whole, its pieces being spans of one latent sequence (the payload's
joint flag): no seam at the chunk boundaries (a 4.8 dB louder error there on held-out music when
pieces were coded apart; see docs/benchmarks.md). In lossless mode
each piece's exact values are coded under the distribution the decoder predicts from the piece's
own latents, computed one piece at a time on one thread so encoder and decoder compute them
identically: text bytes under the model's softmax over 256 values, pixels and PCM samples (8 or
16 bits) under a Laplace around the prediction with a scale fitted per block
(``LaplaceResidualCodec``).

Lossless restores *files*: the container (``aecore.containers``: PNG, WAV) rebuilds the exact
bytes from the values and a recipe. A file no container can rebuild (JPEG, FLAC, Ogg, RGBA PNG,
24-bit WAV, ...) is stored as it is, flagged, and counted in the job's quality figures. Every
lossless payload is decoded again at encode time and must restore the file byte for byte.

The fixed-size query latent is separate: the quantized latent of the sample resized to the
model's native size, so every row of a dataset has the same latent shape.
"""

from __future__ import annotations

import copy
import struct
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from aecore.codecs import ExactPiece, one_thread
from aecore.embedding import embedding_shape, pool_embedding
from aecore.modalities import Info, Modality, Sample
from aecore.models import ConvAutoEncoder
from aecore.payload import (
    JOINT,
    LOSSLESS,
    NO_LATENTS,
    PAYLOAD_VERSION,
    READS,
    STORED,
    U32,
    PayloadError,
    Reader,
    container_section,
    read_container_section,
)
from aecore.tiling import tiled

#: the least a learned payload spends per value (bits): 1 bit per 10,000 values, far below any rate
#: point (the zoo's lowest spend ~0.02 bits per pixel value); a claim under it is refused before
#: anything is allocated. Inputs of up to RATE_FLOOR_FREE values are exempt.
RATE_FLOOR_BITS, RATE_FLOOR_FREE = 1e-4, 1 << 20

#: output positions per tile of an integer synthesis (float64 im2col buffers are twice float32's):
#: 512 x 512 pixels of an image, as many samples of a signal
EXACT_TILE_POSITIONS = 512 * 512

__all__ = ["Compressor", "Encoded", "PAYLOAD_VERSION", "PayloadError"]

@dataclass(frozen=True)
class Encoded:
    payload: bytes
    latent: np.ndarray  # float32 [prod(query_latent_shape)]: the query embedding (aecore.embedding)
    quality: dict[str, float] | None  # filled for samples asked to be measured


class Compressor:
    def __init__(self, modality: Modality, model: ConvAutoEncoder, device: str = "cpu", lossless: bool | None = None,
                 architecture: str | None = None, bundle_sha256: str | None = None) -> None:
        self.modality = modality
        #: the registry name of the model class (recorded in dataset metadata)
        self.architecture = architecture
        #: sha256 of the bundle the model came from: datasets record it, decode checks it
        self.bundle_sha256 = bundle_sha256
        self.model = model.to(device).eval()
        self.device = device
        self._cpu_model: ConvAutoEncoder | None = None
        self.lossless = getattr(modality, "lossless_default", False) if lossless is None else lossless
        if not self.lossless and model.lossless_only:
            raise ValueError(f"{type(model).__name__} restores files exactly or not at all; set lossless: true")
        if self.lossless and type(modality).symbols is Modality.symbols:
            raise ValueError(f"lossless mode is not available for {modality.name} yet; set lossless: false")

    @property
    def codec_name(self) -> str:
        return self.model.codec_name

    @property
    def query_latent_shape(self) -> tuple[int, ...]:
        """The shape of a row's query embedding (``aecore.embedding``)."""
        return embedding_shape(self.model.latent_shape((self.model.native_size,) * self.modality.spatial_dims))

    @torch.inference_mode()
    def embed(self, samples: Sequence[Sample]) -> np.ndarray:
        """``[len(samples), prod(query_latent_shape)]``: each sample's query embedding."""
        thumbs = np.stack([self.modality.thumbnail(s, self.model.native_size) for s in samples])
        return pool_embedding(torch.round(self.model.g_a(torch.from_numpy(thumbs).to(self.device))))

    def _pieces(self, x: np.ndarray) -> list[np.ndarray]:
        chunk = getattr(self.model, "chunk", None)
        if not chunk or x.shape[-1] <= chunk:
            return [x]
        return [x[..., i : i + chunk] for i in range(0, x.shape[-1], chunk)]

    def _pad(self, x: np.ndarray) -> np.ndarray:
        return self.modality.pad(Sample(x=x), self.model.stride)

    def load(self, data: bytes) -> Sample:
        """One file as the model sees it; in lossless mode also what rebuilds its exact bytes
        (the container's recipe), or nothing when the file will be stored as it is."""
        sample = self.modality.load(data)
        if not self.lossless:
            return sample
        return Sample(x=sample.x, info=sample.info.with_exact(self.modality.exact(data, sample), file=data))

    @torch.inference_mode()
    def encode(self, samples: Sequence[Sample], measure: Sequence[bool] | None = None,
               estimate: bool = False) -> list[Encoded]:
        """Encode samples; pieces of equal padded shape share one forward pass. ``measure``: the
        samples whose quality is recorded; ``estimate`` (lossy only): measured on the model's float
        synthesis, ~5x faster than the exact one decode runs and within a few thousandths of a dB
        of it (``measure`` gives the exact figure of a payload)."""
        measure = measure or [False] * len(samples)
        fast = estimate and not self.lossless
        pieces = [[] if self._stored(s) else self._pieces(s.x) for s in samples]
        joint = [self._joint(s) for s in samples]
        # a joint sample is analysed whole (in tiles) and its latents cut into the pieces' spans
        inputs = [[s.x] if joint[i] else ps for i, (s, ps) in enumerate(zip(samples, pieces))]
        flat = [(i, k, self._pad(p)) for i, ps in enumerate(inputs) for k, p in enumerate(ps)]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for j, (_, _, x) in enumerate(flat):
            groups[x.shape].append(j)
        analysed: list[torch.Tensor] = [torch.empty(0)] * len(flat)
        for idx in groups.values():
            x = torch.from_numpy(np.stack([flat[j][2] for j in idx])).to(self.device)
            y = self._analyze(x).cpu()
            for k, j in enumerate(idx):
                analysed[j] = y[k]
        ys: list[torch.Tensor] = []
        for (i, _, _), y in zip(flat, analysed):
            ys.extend(torch.split(y, self.model.chunk // self.model.stride, dim=-1) if joint[i] else [y])
        latents = self.embed(samples)
        out = []
        j = 0
        for i, s in enumerate(samples):
            head = bytes([PAYLOAD_VERSION, self._flags(s)]) + s.info.pack()
            x_hats: list[np.ndarray] = []
            y_hats: list[torch.Tensor] = []
            used: list[float] = []
            if self._stored(s):
                payload = head + s.info.file
            else:
                parts = [container_section(s.info.exact)] if self.lossless else []
                parts.append(U32.pack(len(pieces[i])))
                offset = 0
                for piece in pieces[i]:
                    words, y_hat = self.model.compress_latent(ys[j])
                    j += 1
                    start, offset = offset, offset + piece.shape[-1]
                    info = s.info.piece(start, piece.shape[1:])
                    coder = self.model.exact_coder(info.bits) if self.lossless else None
                    x_hat = None
                    if joint[i]:
                        y_hats.append(y_hat)
                    elif (coder is not None and coder.synthesizes) or (measure[i] and not self.model.lossless_only):
                        x_hat = self._synthesize(y_hat, fast)
                        x_hats.append(x_hat[..., : piece.shape[-1]])
                    if coder is None:
                        parts += [U32.pack(len(words)), words]
                        continue
                    symbols = self.modality.symbols(piece, info)
                    view = self.modality.lossless_view(x_hat, info) if x_hat is not None and coder.synthesizes else None
                    residual = coder.encode(symbols, y_hat, view)
                    def zero(x: np.ndarray | None = x_hat, info: Info = info) -> np.ndarray:
                        return self.modality.lossless_view(np.zeros_like(x), info)

                    alone = coder.encode_alone(symbols, zero)
                    if alone is not None and len(alone) < len(words) + len(residual):
                        parts += [U32.pack(NO_LATENTS), U32.pack(len(alone)), alone]
                        used.append(0.0)
                    else:
                        parts += [U32.pack(len(words)), words, U32.pack(len(residual)), residual]
                        used.append(1.0)
                payload = head + b"".join(parts)
                if joint[i] and measure[i]:
                    x_hats = [self._synthesize(torch.cat(y_hats, dim=-1), fast)[..., : s.x.shape[-1]]]
            quality = None
            if measure[i]:
                quality = self._quality(s, x_hats, payload)
                if used:
                    quality["model_used"] = float(np.mean(used))  # the share of pieces the model paid for
            out.append(Encoded(payload=payload, latent=latents[i], quality=quality))
        if self.lossless:  # every payload decoded again, all at once (a causal coder steps them together)
            for s, (restored, _, _) in zip(samples, self.decode_many([e.payload for e in out])):
                if restored != self._expected(s):
                    raise RuntimeError("lossless verification failed: the decoder did not restore the input exactly")
        return out

    def _stored(self, s: Sample) -> bool:
        """Lossless, and no container rebuilds this file: it is kept as it is."""
        return self.lossless and s.info.file is not None and s.info.exact is None

    def _joint(self, s: Sample) -> bool:
        """Lossy, longer than a chunk, and a model that runs in overlapping tiles: the pieces are
        spans of one latent sequence, analysed and synthesized whole (no seams between them)."""
        chunk, stride = getattr(self.model, "chunk", None), self.model.stride
        return (not self.lossless and bool(chunk) and s.x.shape[-1] > chunk and chunk % stride == 0
                and bool(self.model.receptive_margin))

    def _flags(self, s: Sample) -> int:
        return ((LOSSLESS if self.lossless else 0) | (STORED if self._stored(s) else 0)
                | (JOINT if self._joint(s) else 0))

    def _expected(self, s: Sample) -> bytes:
        """What a lossless decode must return: the file itself, or (for a sample made without
        its file) the file the modality writes canonically from the exact values."""
        if s.info.file is not None:
            return s.info.file
        return self.modality.from_symbols(self.modality.symbols(s.x, s.info.piece(0, s.x.shape[1:])), s.info)

    def _quality(self, s: Sample, x_hats: list[np.ndarray], payload: bytes) -> dict[str, float]:
        if self.lossless:
            unit, count = s.info.rate_unit()
            return {"exact": 1.0, "stored": float(self._stored(s)), unit: 8.0 * len(payload) / count}
        x_hat = s.info.finish(np.concatenate(x_hats, axis=-1)) if x_hats else np.zeros_like(s.x)
        return self._lossy_quality(s, x_hat, payload)

    def _lossy_quality(self, s: Sample, x_hat: np.ndarray, payload: bytes) -> dict[str, float]:
        unit, count = s.info.rate_unit()
        ext = (slice(None), *(slice(0, e) for e in s.info.positions))
        quality = self.modality.quality(s.x[ext], x_hat[ext])
        quality[unit] = 8.0 * len(payload) / count
        return quality

    def measure(self, s: Sample, payload: bytes) -> dict[str, float]:
        """The quality of a lossy ``payload`` of ``s`` as decode restores it (exact synthesis)."""
        _, x_hat, _ = self.decode(payload)
        return self._lossy_quality(s, x_hat, payload)

    def _synthesize(self, y_hat: torch.Tensor, fast: bool = False) -> np.ndarray:
        # Lossless codes values around x_hat: encoder and decoder must compute it identically,
        # so then it runs on the CPU, on one thread, whatever device encodes. ``fast`` (lossy
        # estimates only) takes the float synthesis where decode runs the exact one.
        model, device = self.model, self.device
        exact = None if fast else model.exact_synthesis()
        if exact is not None:  # integers: the same output on any machine and thread count
            margin, stride = model.receptive_margin, model.stride
            side = round(EXACT_TILE_POSITIONS ** (1 / (y_hat.dim() - 1)))  # per spatial dimension
            return tiled(exact, y_hat[None].cpu(), max(1, side // stride), margin // stride,
                         Fraction(stride))[0].numpy()
        if self.lossless and device != "cpu":
            if self._cpu_model is None:
                self._cpu_model = copy.deepcopy(self.model).cpu()
            model, device = self._cpu_model, "cpu"
        with one_thread() if self.lossless else nullcontext():
            y_hat = y_hat[None].to(device)
            margin = model.receptive_margin
            if not margin:
                return model.g_s(y_hat)[0].cpu().numpy()
            stride = model.stride
            return tiled(model.g_s, y_hat, model.tile // stride, margin // stride, Fraction(stride))[0].cpu().numpy()

    def _analyze(self, x: torch.Tensor) -> torch.Tensor:
        margin = self.model.receptive_margin
        if not margin:
            return self.model.g_a(x)
        return tiled(self.model.g_a, x, self.model.tile, margin, Fraction(1, self.model.stride))

    def check_header(self, payload: bytes, shape: Sequence[int] | None = None) -> tuple[Info, int]:
        """The payload's header, checked before anything is allocated: a known version, the
        modality's own limits, and (given the row's ``shape`` column) the same shape. Raises
        :class:`PayloadError` with one line."""
        if len(payload) < 2 or payload[0] not in READS:
            version = payload[0] if payload else None
            raise PayloadError(f"payload version {version} is not {PAYLOAD_VERSION}; decode with the aec that wrote it")
        try:
            info, used = self.modality.info_type.unpack(payload[2:], payload[0])
        except (struct.error, ValueError, KeyError) as exc:
            raise PayloadError(f"payload header unreadable ({type(exc).__name__}); the row is corrupt") from None
        if shape is not None and list(info.shape) != list(shape):
            raise PayloadError(f"payload header says shape {list(info.shape)}, the row says {list(shape)}; "
                               "the row is corrupt")
        elements = self.modality.channels * int(np.prod(info.positions, dtype=np.float64))
        if elements > self.modality.max_elements:
            raise PayloadError(f"payload claims {elements:,} values, over the {self.modality.name} limit of "
                               f"{self.modality.max_elements:,}; not decoded")
        if elements > RATE_FLOOR_FREE and elements * RATE_FLOOR_BITS > 8 * len(payload):
            # latents cost bits: a payload this small cannot hold that many values (a decode bomb)
            raise PayloadError(f"payload of {len(payload):,} bytes claims {elements:,} values, below any rate a "
                               "model codes at; the row is corrupt")
        return info, 2 + used

    def decode(self, payload: bytes, shape: Sequence[int] | None = None) -> tuple[bytes, np.ndarray | None, Info]:
        """Payload -> (restored file bytes, reconstruction cropped to the original extent or None, info).
        ``shape``: the row's shape column, checked against the header before decoding."""
        return self.decode_many([payload], [shape])[0]

    @torch.inference_mode()
    def decode_many(self, payloads: Sequence[bytes], shapes: Sequence[Sequence[int] | None] | None = None
                    ) -> list[tuple[bytes, np.ndarray | None, Info]]:
        """Several payloads at once: the exact values of all their pieces are decoded together
        (a causal coder steps every piece of every payload in one batch). Raises on the first bad
        payload; callers that must survive one decode rows one by one."""
        shapes = shapes or [None] * len(payloads)
        plans = [self._plan(p, s) for p, s in zip(payloads, shapes)]
        pending = [(plan, k) for plan in plans if plan["lossless"] for k in range(len(plan["pieces"]))]
        if pending:
            by_bits: dict[int, list] = defaultdict(list)
            for plan, k in pending:
                by_bits[plan["info"].bits].append((plan, k))
            for bits, items in by_bits.items():
                coder = self.model.exact_coder(bits)
                values = coder.decode_many([plan["pieces"][k] for plan, k in items])
                for (plan, k), v in zip(items, values):
                    plan["symbols"][k] = v
        return [self._finish(plan) for plan in plans]

    def _plan(self, payload: bytes, shape: Sequence[int] | None) -> dict[str, Any]:
        """Parse a payload and decode its latents; the exact values are left to ``decode_many``."""
        info, pos = self.check_header(payload, shape)
        lossless = bool(payload[1] & LOSSLESS)
        if payload[1] & STORED:
            return {"stored": payload[pos:], "info": replace(info, lossless=True, stored=True), "lossless": False}
        read = Reader(payload, pos)
        if lossless:
            info = info.with_exact(read_container_section(read) if payload[0] >= 3 else None, lossless=True)
        count = read.u32()
        extent = info.positions
        spans = _spans(extent, getattr(self.model, "chunk", None), count)
        if len(spans) != count:
            raise PayloadError(f"payload holds {count} pieces where its shape makes {len(spans)}; the row is corrupt")
        coder = self.model.exact_coder(info.bits) if lossless else None
        joint = bool(payload[1] & JOINT)
        if joint and (lossless or not self.model.receptive_margin):
            raise PayloadError("payload flags a joint latent sequence this model cannot synthesize; the row is corrupt")
        x_hats, pieces, y_hats = [], [], []
        offset = 0
        for span in spans:
            n = read.u32()
            padded = tuple(max(self.model.stride, -(-e // self.model.stride) * self.model.stride) for e in span)
            y_hat, x_hat = None, None
            if n == NO_LATENTS:  # a lossless piece coded without the model
                if not lossless:
                    raise PayloadError("a lossy payload holds a piece without latents; the row is corrupt")
                if coder is not None and coder.synthesizes:
                    x_hat = np.zeros((self.modality.channels, *padded), np.float32)
            else:
                y_hat = self.model.decompress_latent(read.take(n), self.model.latent_shape(padded))
                if joint:
                    y_hats.append(y_hat)
                elif coder is None or coder.synthesizes:
                    x_hat = self._synthesize(y_hat)
            if x_hat is not None:
                x_hats.append(x_hat[..., : span[-1]])
            if lossless:
                view = self.modality.lossless_view(x_hat, info.piece(offset, span)) if x_hat is not None else None
                values = self.modality.channels * int(np.prod(span))
                pieces.append(ExactPiece(data=read.take(read.u32()), y_hat=y_hat, view=view, count=values))
            offset += span[-1]
        read.finish()
        if joint:
            x_hats = [self._synthesize(torch.cat(y_hats, dim=-1))[..., :offset]]
        return {"info": info, "lossless": lossless, "pieces": pieces, "symbols": [None] * len(pieces),
                "x_hats": x_hats, "extent": extent}

    def _finish(self, plan: dict[str, Any]) -> tuple[bytes, np.ndarray | None, Info]:
        info = plan["info"]
        if "stored" in plan:
            return plan["stored"], None, info
        if plan["lossless"]:
            symbols = plan["symbols"]
            data = self.modality.from_symbols(np.concatenate(symbols) if symbols else np.zeros(0, np.int32), info)
            return data, None, info
        x_hat = info.finish(np.concatenate(plan["x_hats"], axis=-1))
        extent = plan["extent"]
        return self.modality.restore(x_hat, info), x_hat[(slice(None), *(slice(0, e) for e in extent))], info


def _spans(extent: tuple[int, ...], chunk: int | None, count: int) -> list[tuple[int, ...]]:
    """The extents of the pieces an input of ``extent`` was cut into."""
    if count <= 1 or not chunk:
        return [extent]
    total = extent[-1]
    return [(*extent[:-1], min(chunk, total - i)) for i in range(0, total, chunk)]
