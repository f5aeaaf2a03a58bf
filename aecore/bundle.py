"""A trained model as one self-describing blob: safetensors holding the weights (and the coder's
integer tables), with the registry name, config, modality and latent prior in its header.

The registry stores this blob, the zoo ships it, Ray actors receive it and rebuild the
:class:`Compressor` once in ``__init__``. Its sha256 (:func:`bundle_sha256`) names the exact
weights a dataset was encoded with: decoding checks it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from aecore.compressor import Compressor
from aecore.errors import UserError
from aecore.modalities import get_modality
from aecore.models import ConvAutoEncoder, build_model

__all__ = ["FORMAT", "BundleError", "build_from_bundle", "bundle_sha256", "dump_bundle", "load_bundle", "read_bundle"]

FORMAT = "aec-model/2"


class BundleError(UserError, ValueError):
    """A blob that is not a model bundle this aec reads; one line, with the fix."""


def bundle_sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def dump_bundle(model: ConvAutoEncoder, model_name: str, modality: str, extra: dict[str, Any] | None = None,
                dtype: torch.dtype | None = None) -> bytes:
    """``dtype`` (float16) halves the floating-point weights; integer tables stay exact."""
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if dtype is not None and v.dtype == torch.float32:
            v = v.to(dtype)
        tensors[k] = v
    header = {"format": FORMAT, "model": model_name, "config": model.config, "modality": modality,
              "codec": model.codec_state(), "extra": extra or {}}
    # One metadata entry: safetensors keeps metadata in a hash map whose order varies between
    # calls, and the same model must give the same bytes (its sha256 names it).
    return save_tensors(tensors, metadata={"aec": json.dumps(header, sort_keys=True)})


def read_bundle(blob: bytes) -> dict[str, Any]:
    """The bundle's header and tensors (float32), without building the model."""
    try:
        tensors = load_tensors(blob)
        header = _header(blob)
    except (SafetensorError, ValueError, json.JSONDecodeError) as exc:
        raise BundleError(f"not an aec model bundle ({str(exc).splitlines()[0][:80]}); retrain or re-register it") from None
    if header.get("format") != FORMAT:
        raise BundleError(f"model bundle has format {header.get('format')!r}, expected {FORMAT!r}; retrain or upgrade aec")
    return {**header, "state_dict": {k: (v.float() if v.is_floating_point() and v.dtype != torch.float64 else v)
                                     for k, v in tensors.items()}}


def _header(blob: bytes) -> dict[str, Any]:
    if len(blob) < 8:
        raise ValueError("too short")
    n = int.from_bytes(blob[:8], "little")
    return json.loads(json.loads(blob[8 : 8 + n]).get("__metadata__", {}).get("aec", "{}"))


def build_from_bundle(bundle: dict[str, Any], **overrides: Any) -> ConvAutoEncoder:
    """The model a bundle describes, with its weights and latent prior (config ``overrides`` for
    keys that hold no weights, e.g. the ``rate_point``)."""
    config = {**bundle["config"], **overrides}
    _check_config(bundle, config)
    model = build_model(bundle["model"], **config)
    model.load_state_dict(bundle["state_dict"])
    model.load_codec_state(bundle["codec"])
    return model


def _check_config(bundle: dict[str, Any], config: dict[str, Any]) -> None:
    """The config must describe the tensors the bundle holds, checked on the meta device (no
    memory) before the model is built: a few hundred bytes of header must not claim gigabytes."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build_model(bundle["model"], **config).named_parameters()}
    except Exception as exc:  # noqa: BLE001 - a config the model refuses
        raise BundleError(f"model bundle's config does not build a {bundle['model']} ({type(exc).__name__}); "
                          "retrain or re-register it") from None
    held = bundle["state_dict"]
    wrong = [k for k, shape in shapes.items() if k not in held or tuple(held[k].shape) != shape]
    if wrong:
        raise BundleError(f"model bundle's config does not match its weights ({len(wrong)} tensors, e.g. {wrong[0]}); "
                          "the bundle is damaged or not aec's")


def load_bundle(blob: bytes, device: str = "cpu", lossless: bool | None = None,
                rate_point: float | None = None) -> Compressor:
    bundle = read_bundle(blob)
    if rate_point is not None and "rate_point" not in bundle["config"]:
        raise BundleError(f"model {bundle['model']!r} has one rate point; drop `rate_point` or use a variable-rate model")
    model = build_from_bundle(bundle, **({"rate_point": rate_point} if rate_point is not None else {}))
    return Compressor(get_modality(bundle["modality"]), model, device=device, lossless=lossless,
                      architecture=bundle["model"], bundle_sha256=bundle_sha256(blob))
