"""Turn a training checkpoint into a zoo bundle (float16 weights, exact integer tables).

    python -m recipes.export_zoo build/zoo-train/image-small/checkpoint.pt \\
        --model image-hyperprior --preset small --modality image \\
        --out aecore/zoo/weights/image-hyperprior-small.safetensors --note "24000 steps ..."

The coder's tables are recomputed from the trained densities (``update_tables``), so a checkpoint
written by any earlier version of the table layout exports the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from aecore.bundle import dump_bundle
from aecore.models import build_model

__all__ = ["export"]

_TABLES = (".pmf", ".radius")


def export(checkpoint: Path, model_name: str, preset: str, modality: str, out: Path, extra: dict,
           half: bool = True, **config: object) -> int:
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    weights = {k: v for k, v in state["model"].items() if not k.endswith(_TABLES)}
    model = build_model(model_name, preset, **config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if unexpected or any(not k.endswith(_TABLES) for k in missing):
        raise SystemExit(f"checkpoint does not fit {model_name}/{preset}: missing {missing}, unexpected {unexpected}")
    model.eval()
    if half:  # round the weights first, so the tables and the integer nets come from what ships
        model.load_state_dict(dump_and_reload(model))
    model.update_tables()
    blob = dump_bundle(model, model_name, modality, {**extra, "steps": state.get("step")},
                       dtype=torch.float16 if half else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    return len(blob)


def dump_and_reload(model: torch.nn.Module) -> dict:
    return {k: (v.half().float() if v.dtype == torch.float32 else v) for k, v in model.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--model", default="image-hyperprior")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--modality", default="image")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--extra", default="{}", help="JSON recorded in the bundle: recipe, data, figures")
    parser.add_argument("--float32", action="store_true")
    args = parser.parse_args()
    size = export(args.checkpoint, args.model, args.preset, args.modality, args.out, json.loads(args.extra),
                  half=not args.float32)
    print(f"wrote {args.out} ({size:,} bytes)")


if __name__ == "__main__":
    main()
