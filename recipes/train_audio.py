"""Train an audio model of the zoo on the recordings of ``recipes.audio_data`` (plain PyTorch,
no Ray; CPU or GPU), resumable, with the loop of ``recipes.loop``.

    python -m recipes.train_audio --preset small --steps 20000 --out build/zoo-train/audio-small

Each step draws random crops (``--crop`` samples at 16 kHz, a random gain of -12..0 dB, crops
with nothing above -60 dBFS redrawn) and a rate point per crop. The held-out evaluation codes 16
clips of 2 s at each rate point: kbit/s (ideal code length), SNR and log-spectral distance.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from aecore.models import build_model
from recipes.audio_data import RATE
from recipes.loop import parse_training_arguments, train

__all__ = ["main"]


def load_clips(folder: Path, min_samples: int = 0) -> list[np.ndarray]:
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(folder.rglob("*.wav"))]
    return [c for c in clips if len(c) >= min_samples]


def batches(clips: list[np.ndarray], size: int, batch: int, rng: np.random.Generator) -> Iterator[torch.Tensor]:
    weights = np.array([len(c) for c in clips], dtype=np.float64)
    weights /= weights.sum()  # every second of audio is as likely as any other
    while True:
        out = np.zeros((batch, 1, size), np.float32)
        for i in range(batch):
            for _ in range(10):  # redraw crops with nothing above -60 dBFS (crops partly silent stay:
                # the model must learn to restore digital silence as silence, as Opus does)
                clip = clips[int(rng.choice(len(clips), p=weights))]
                start = int(rng.integers(max(1, len(clip) - size + 1)))
                crop = clip[start : start + size]
                if np.max(np.abs(crop), initial=0.0) > 1e-3:
                    break
            out[i, 0, : len(crop)] = crop * 10 ** (rng.uniform(-12, 0) / 20)
        yield torch.from_numpy(out)


def _lsd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Log-spectral distance in dB (512-point frames), averaged over frames and clips."""
    w = torch.hann_window(512)
    sx = torch.stft(x.flatten(1), 512, 128, window=w, return_complex=True).abs().pow(2).clamp_min(1e-10)
    sy = torch.stft(y.flatten(1), 512, 128, window=w, return_complex=True).abs().pow(2).clamp_min(1e-10)
    d = 10 * torch.log10(sx) - 10 * torch.log10(sy)
    return float(torch.sqrt(torch.mean(d**2, dim=1)).mean())


@torch.no_grad()
def evaluate(model: torch.nn.Module, clips: torch.Tensor) -> dict[str, float]:
    model.eval()
    out = {}
    for q in range(1, len(model.lambdas) + 1):
        model.rate_point = float(q)
        r = model(clips)
        x_hat = r["x_hat"].clamp(-1, 1)
        noise = torch.sum((x_hat - clips) ** 2, dim=(1, 2)).clamp_min(1e-12)
        snr = 10 * torch.log10(torch.sum(clips**2, dim=(1, 2)) / noise)
        out[f"q{q}_kbps"] = round(float(r["bits"].sum() / (clips.shape[0] * clips.shape[-1] / RATE) / 1000), 3)
        out[f"q{q}_snr"] = round(float(snr.mean()), 3)
        out[f"q{q}_lsd"] = round(_lsd(clips, x_hat), 3)
    return out


def main() -> None:
    args = parse_training_arguments(__doc__, "build/zoo-data/audio", "audio-hyperprior", "small", steps=20000,
                                    batch=8, crop=16000, lr=3e-4)
    model = build_model(args.model, args.preset).to(args.device)
    clips = load_clips(args.data / "train")
    held = load_clips(args.data / "heldout", min_samples=2 * RATE)[:16]
    held_x = torch.stack([torch.from_numpy(h[: 2 * RATE]) for h in held]).unsqueeze(1).to(args.device)
    train(model, args, lambda rng: batches(clips, args.crop, args.batch, rng), lambda m: evaluate(m, held_x),
          modality="audio", recipe="recipes.train_audio")


if __name__ == "__main__":
    main()
