"""The query embedding of a file: a compact, fixed-size summary of what the model sees in it.

A table's ``latent`` column holds it, for queries (nearest files, clusters, near-duplicates in
DuckDB or Polars), not for decoding. It is the model's analysis ``g_a`` of the file's thumbnail
at the model's native size (an image resized to 32x32; the first second of a sound; the first
KiB of a text), quantized (rounded, as the codec would), then average-pooled over positions to
a grid small enough that channels x positions is at most :data:`EMBEDDING_VALUES`:

=========  =================  ===========  ======
model      g_a at native      pooled grid  values
=========  =================  ===========  ======
image      128 x 2 x 2        1 x 1        128
audio      64 x 50            2            128
text       4 x 16             16           64
=========  =================  ===========  ======

Values are rounded to float16 precision (the column is ``list<float32>``: Delta has no half
type), so Parquet's dictionary and zstd encodings store a row's embedding in a few hundred bytes.
Two files' embeddings are comparable only when the same model made them (the table records it).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["EMBEDDING_NOTE", "EMBEDDING_VALUES", "embedding_shape", "pool_embedding"]

#: the most values one row's embedding holds
EMBEDDING_VALUES = 128
#: what a table says its ``latent`` column is
EMBEDDING_NOTE = (f"query embedding: the model's quantized g_a of the file's thumbnail at its native size, "
                  f"average-pooled to at most {EMBEDDING_VALUES} values (aecore.embedding)")


def embedding_shape(latent_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(channels, *grid)`` of the embedding of a latent of ``latent_shape`` (``(C, *positions)``):
    the same number of cells along each axis, as many as fit the budget and the latent."""
    channels, spatial = latent_shape[0], latent_shape[1:]
    per_axis = max(1, math.floor((EMBEDDING_VALUES / channels) ** (1 / max(1, len(spatial))) + 1e-9))
    return (channels, *(min(per_axis, n) for n in spatial))


def pool_embedding(y: torch.Tensor) -> np.ndarray:
    """``y`` (``[N, C, *positions]``, quantized latents) -> ``[N, values]`` float32 embeddings."""
    grid = embedding_shape(tuple(y.shape[1:]))[1:]
    pool = F.adaptive_avg_pool2d if len(grid) == 2 else F.adaptive_avg_pool1d
    pooled = pool(y.float(), grid).reshape(y.shape[0], -1)
    return pooled.cpu().numpy().astype(np.float16).astype(np.float32)
