"""Quality metrics of reconstructions."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr"]


def psnr(x: np.ndarray, x_hat: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for an exact reconstruction."""
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)
