"""Quality metrics of reconstructions."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MS_SSIM_MIN_SIDE", "ms_ssim", "psnr"]

# MS-SSIM's 11-tap window must still fit after its 4 halvings (Wang, Simoncelli, Bovik 2003).
MS_SSIM_MIN_SIDE = 161
#: larger images are measured on their central crop of this side (a 16 MP image whole takes
#: ~50 s and ~4 GB on 2 cores, for a figure the crop gives within a few thousandths)
MS_SSIM_MAX_SIDE = 1024


def psnr(x: np.ndarray, x_hat: np.ndarray, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` for an exact reconstruction."""
    a, b = np.asarray(x).reshape(-1), np.asarray(x_hat).reshape(-1)
    total, step = 0.0, 1 << 20  # in chunks: float64 copies of a 16 MP image would take 800 MB
    for i in range(0, a.size, step):
        d = a[i : i + step].astype(np.float64) - b[i : i + step].astype(np.float64)
        total += float(np.dot(d, d))
    mse = total / max(a.size, 1)
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def ms_ssim(x: np.ndarray, x_hat: np.ndarray) -> float | None:
    """Multi-scale SSIM of images ``[C, H, W]`` in [0, 1] (pytorch-msssim, the 5-scale weights of
    the paper); None for images with a side under ``MS_SSIM_MIN_SIDE`` pixels, where it is undefined."""
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    crop = tuple(slice(max(0, (n - MS_SSIM_MAX_SIDE) // 2), max(0, (n - MS_SSIM_MAX_SIDE) // 2) + MS_SSIM_MAX_SIDE)
                 for n in x.shape[-2:])
    x, x_hat = x[(..., *crop)], x_hat[(..., *crop)]
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    a = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
    b = torch.from_numpy(np.ascontiguousarray(x_hat, np.float32))[None]
    return float(_ms_ssim(a, b, data_range=1.0))
