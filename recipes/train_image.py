"""Train an image model of the zoo on the photos of ``recipes.image_data`` (plain PyTorch, no
Ray; CPU or GPU), resumable, with a warmup-stable-decay learning rate.

    python -m recipes.train_image --preset small --steps 30000 --out build/zoo-train/image-small

Every ``--checkpoint-every`` steps the state is written atomically to ``OUT/checkpoint.pt``; a
re-run with the same ``--out`` resumes there (a later ``--steps`` moves the decay phase). The
learning rate warms up over ``--warmup`` steps, holds, and decays linearly to 1/20 over the
last ``--decay`` share of the steps. Each step draws random crops (``--crop``, flipped at
random) and a rate point per crop (gain units). At the end the coder's tables are computed and
``OUT/model.safetensors`` written (a bundle, ``aecore.bundle``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecore.models import build_model
from recipes.loop import parse_training_arguments, train

__all__ = ["main"]


def load_images(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


def batches(images: list[np.ndarray], size: int, batch: int, rng: np.random.Generator):
    while True:
        out = np.empty((batch, size, size, 3), np.uint8)
        for i in range(batch):
            img = images[int(rng.integers(len(images)))]
            top = int(rng.integers(img.shape[0] - size + 1))
            left = int(rng.integers(img.shape[1] - size + 1))
            crop = img[top : top + size, left : left + size]
            out[i] = crop[:, ::-1] if rng.random() < 0.5 else crop
        yield torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def evaluate(model: torch.nn.Module, crops: torch.Tensor) -> dict[str, float]:
    """Held-out crops at each rate point: bits per pixel (ideal code length) and PSNR, rounding."""
    model.eval()
    out = {}
    for q in range(1, len(model.lambdas) + 1):
        model.rate_point = float(q)
        r = model(crops)
        mse = torch.mean((r["x_hat"].clamp(0, 1) - crops) ** 2, dim=(1, 2, 3))
        out[f"q{q}_bpp"] = round(float(r["bits"].sum() / (crops.shape[0] * crops.shape[2] * crops.shape[3])), 4)
        out[f"q{q}_psnr"] = round(float(torch.mean(10 * torch.log10(1 / mse))), 3)
    model.train()
    return out


def main() -> None:
    args = parse_training_arguments(__doc__, "build/zoo-data/images", "image-hyperprior", "small", steps=30000,
                                    batch=8, crop=128, lr=2e-4)
    model = build_model(args.model, args.preset).to(args.device)
    images = load_images(args.data / "train")
    held = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((args.data / "heldout").glob("*.png"))[:16]]
    crops = torch.stack([torch.from_numpy(np.ascontiguousarray(h[:256, :256])).permute(2, 0, 1).float() / 255
                         for h in held]).to(args.device)
    train(model, args, lambda rng: batches(images, args.crop, args.batch, rng), lambda m: evaluate(m, crops),
          modality="image", recipe="recipes.train_image")


if __name__ == "__main__":
    main()
