"""Files <-> payloads: a modality, a model and a latent codec working together.

Payload layout (everything decode needs besides the model)::

    u8 version | modality info (pack_info) | range-coded latent words (u32 LE)

The fixed-size query latent is separate: the quantized latent of the sample resized to
the model's native size, so every row of a dataset has the same latent shape.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aecore.codecs import FactorizedCategoricalCodec
from aecore.modalities import Modality, Sample
from aecore.models import ConvAutoEncoder

__all__ = ["Compressor", "Encoded", "PAYLOAD_VERSION"]

PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class Encoded:
    payload: bytes
    latent: np.ndarray  # float32 [prod(query_latent_shape)]
    quality: dict[str, float] | None  # filled for samples asked to be measured


class Compressor:
    def __init__(self, modality: Modality, model: ConvAutoEncoder, codec: FactorizedCategoricalCodec,
                 device: str = "cpu") -> None:
        self.modality = modality
        self.model = model.to(device).eval()
        self.codec = codec
        self.device = device

    @property
    def query_latent_shape(self) -> tuple[int, ...]:
        n = self.model.native_size
        return self.model.latent_shape((n, n))

    @torch.inference_mode()
    def encode(self, samples: Sequence[Sample], measure: Sequence[bool] | None = None) -> list[Encoded]:
        """Encode samples; those of equal padded shape share one forward pass."""
        measure = measure or [False] * len(samples)
        padded = [self.modality.pad(s, self.model.stride) for s in samples]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, x in enumerate(padded):
            groups[x.shape].append(i)
        y_hats: list[np.ndarray] = [np.empty(0)] * len(samples)
        x_hats: dict[int, np.ndarray] = {}
        for idx in groups.values():
            x = torch.from_numpy(np.stack([padded[i] for i in idx])).to(self.device)
            y_hat = torch.round(self.model.g_a(x))
            want = [k for k, i in enumerate(idx) if measure[i]]
            if want:
                rec = self.model.g_s(y_hat[want]).cpu().numpy()
                for k, r in zip(want, rec):
                    x_hats[idx[k]] = r
            for k, i in enumerate(idx):
                y_hats[i] = y_hat[k].cpu().numpy()
        thumbs = np.stack([self.modality.thumbnail(s, self.model.native_size) for s in samples])
        latents = torch.round(self.model.g_a(torch.from_numpy(thumbs).to(self.device))).cpu().numpy()
        out = []
        for i, s in enumerate(samples):
            header = bytes([PAYLOAD_VERSION]) + self.modality.pack_info(s.info)
            payload = header + self.codec.compress(y_hats[i])
            quality = None
            if i in x_hats:
                ext = tuple(slice(0, e) for e in self.modality.extent(s.info))
                quality = self.modality.quality(s.x[(slice(None), *ext)], x_hats[i][(slice(None), *ext)])
                unit, count = self.modality.rate_unit(s.info)
                quality[unit] = 8.0 * len(payload) / count
            out.append(Encoded(payload=payload, latent=latents[i].reshape(-1).astype(np.float32), quality=quality))
        return out

    def unpack(self, payload: bytes) -> tuple[dict[str, Any], np.ndarray]:
        """Payload -> (modality info, integer latents y_hat)."""
        if not payload or payload[0] != PAYLOAD_VERSION:
            version = payload[0] if payload else None
            raise ValueError(f"payload version {version} is not {PAYLOAD_VERSION}; decode with the aec that wrote it")
        info, used = self.modality.unpack_info(payload[1:])
        padded = tuple(-(-e // self.model.stride) * self.model.stride for e in self.modality.extent(info))
        y_hat = self.codec.decompress(payload[1 + used :], self.model.latent_shape(padded))
        return info, y_hat

    @torch.inference_mode()
    def decode(self, payload: bytes) -> tuple[bytes, np.ndarray, dict[str, Any]]:
        """Payload -> (restored file bytes, reconstruction cropped to the original extent, info)."""
        info, y_hat = self.unpack(payload)
        x_hat = self.model.g_s(torch.from_numpy(y_hat[None]).to(self.device))[0].cpu().numpy()
        ext = tuple(slice(0, e) for e in self.modality.extent(info))
        return self.modality.restore(x_hat, info), x_hat[(slice(None), *ext)], info
