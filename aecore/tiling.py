"""Running a convolutional transform over a large input in tiles, with bounded memory.

A stack of convolutions only looks ``margin`` positions around each output, so a tile computed
with that much of its neighbourhood around it equals the same region computed on the whole
input (up to float rounding): no seams, and memory set by the tile, not the image. ``g_a`` of a
4000x4000 photo (1.5 GB of first-layer activations at once) runs as tiles of ``tile`` pixels.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction

import torch

__all__ = ["tiled"]


def tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, margin: int,
          scale: Fraction) -> torch.Tensor:
    """``fn(x)`` computed tile by tile over the trailing (spatial) dimensions of ``x [B, C, ...]``.

    ``tile`` and ``margin`` are in input positions (multiples of the transform's stride), and
    ``scale`` is output positions per input position (1/16 for an analysis transform, 16 for a
    synthesis transform)."""
    spatial = x.shape[2:]
    if all(n <= tile for n in spatial):
        return fn(x)
    starts = [range(0, n, tile) for n in spatial]
    out: torch.Tensor | None = None
    for corner in itertools.product(*starts):
        lo = [max(0, s - margin) for s in corner]
        hi = [min(n, s + tile + margin) for s, n in zip(corner, spatial)]
        piece = fn(x[(..., *(slice(a, b) for a, b in zip(lo, hi)))])
        if out is None:
            out = piece.new_empty((*piece.shape[:2], *(int(n * scale) for n in spatial)))
        keep = tuple(slice(int((s - a) * scale), int((min(s + tile, n) - a) * scale))
                     for s, a, n in zip(corner, lo, spatial))
        dest = tuple(slice(int(s * scale), int(min(s + tile, n) * scale)) for s, n in zip(corner, spatial))
        out[(..., *dest)] = piece[(..., *keep)]
    assert out is not None
    return out
