"""A trained model as one self-describing blob: weights, config, modality and prior.

The registry stores this blob; Ray actors receive it and rebuild the :class:`Compressor`
once in ``__init__``.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from aecore.codecs import FactorizedCategoricalCodec
from aecore.compressor import Compressor
from aecore.modalities import get_modality
from aecore.models import ConvAutoEncoder, build_model

__all__ = ["FORMAT", "dump_bundle", "load_bundle"]

FORMAT = "aec-model/1"


def dump_bundle(model: ConvAutoEncoder, model_name: str, modality: str, codec: FactorizedCategoricalCodec) -> bytes:
    buf = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "model": model_name,
            "config": model.config,
            "modality": modality,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "codec": codec.state(),
        },
        buf,
    )
    return buf.getvalue()


def read_bundle(blob: bytes) -> dict[str, Any]:
    bundle = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    if bundle.get("format") != FORMAT:
        raise ValueError(f"model blob has format {bundle.get('format')!r}, expected {FORMAT!r}; retrain or upgrade aec")
    return bundle


def load_bundle(blob: bytes, device: str = "cpu", lossless: bool | None = None) -> Compressor:
    bundle = read_bundle(blob)
    model = build_model(bundle["model"], **bundle["config"])
    state = dict(bundle["state_dict"])
    state.pop("residual_scale", None)  # bundles before per-block residual scales carried one fixed scale
    model.load_state_dict(state)
    codec = FactorizedCategoricalCodec.from_state(bundle["codec"])
    return Compressor(get_modality(bundle["modality"]), model, codec, device=device, lossless=lossless,
                      architecture=bundle["model"])
