"""Weights as safetensors: tensors plus the model's registry name and config in the header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

__all__ = ["load_weights", "save_weights"]


def save_weights(model: torch.nn.Module, name: str, path: Path, recipe: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    """``dtype`` (e.g. float16) stores floating-point tensors smaller; integer tables stay exact."""
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if dtype is not None and v.is_floating_point() and v.dtype == torch.float32:
            v = v.to(dtype)
        tensors[k] = v
    meta = {"model": name, "config": json.dumps(model.config), "recipe": json.dumps(recipe or {})}
    save_file(tensors, str(path), metadata=meta)


def load_weights(path: Path) -> tuple[str, dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """``(model name, config, state dict in float32, recipe)``."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = {k: (v.float() if v.dtype in (torch.float16, torch.bfloat16) else v) for k, v in load_file(str(path)).items()}
    return meta["model"], json.loads(meta["config"]), tensors, json.loads(meta.get("recipe", "{}"))
