"""Shared plumbing of 1-D modalities (audio, text): a model tensor ``x`` of shape ``[1, L]``."""

from __future__ import annotations

import numpy as np

from aecore.modalities.base import Modality, Sample

__all__ = ["SequenceModality"]


class SequenceModality(Modality):
    channels = 1
    spatial_dims = 1

    def training_patches(self, sample: Sample, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
        x = sample.x
        if x.shape[1] < size:
            x = np.pad(x, ((0, 0), (0, size - x.shape[1])))
        starts = rng.integers(0, x.shape[1] - size + 1, size=count)
        return np.stack([x[:, s : s + size] for s in starts]).astype(np.float32)

    def thumbnail(self, sample: Sample, size: int) -> np.ndarray:
        x = sample.x[:, :size]
        return np.pad(x, ((0, 0), (0, size - x.shape[1])))

    def pad(self, sample: Sample, multiple: int) -> np.ndarray:
        # Zero-length inputs still get one stride of padding: the model needs a position.
        n = sample.x.shape[1]
        return np.pad(sample.x, ((0, 0), (0, max(multiple, -(-n // multiple) * multiple) - n)))
