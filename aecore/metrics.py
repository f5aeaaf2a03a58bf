"""Quality metrics of reconstructions."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MS_SSIM_MIN_SIDE", "ms_ssim", "psnr"]

# MS-SSIM's 11-tap window must still fit after its 4 halvings (Wang, Simoncelli, Bovik 2003).
MS_SSIM_MIN_SIDE = 161


def psnr(x: np.ndarray, x_hat: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for an exact reconstruction."""
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def ms_ssim(x: np.ndarray, x_hat: np.ndarray) -> float | None:
    """Multi-scale SSIM of images ``[C, H, W]`` in [0, 1] (pytorch-msssim, the 5-scale weights of
    the paper); None for images with a side under ``MS_SSIM_MIN_SIDE`` pixels, where it is undefined."""
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
    b = torch.from_numpy(np.ascontiguousarray(x_hat, np.float32))[None]
    return float(_ms_ssim(a, b, data_range=1.0))
