"""The query embedding (aecore.embedding): fixed-size, compact, and near for alike files."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from aecore import load_bundle
from aecore.embedding import EMBEDDING_VALUES, embedding_shape, pool_embedding
from aecore.zoo import zoo_bundle
from jobs.sample_data import PHOTOS, _photo_dir


def test_the_grid_fits_the_budget():
    assert embedding_shape((128, 2, 2)) == (128, 1, 1)  # the image zoo model at 32 px
    assert embedding_shape((64, 50)) == (64, 2)  # audio: 1 s at 16 kHz
    assert embedding_shape((4, 16)) == (4, 16)  # text: 1 KiB, whole
    assert embedding_shape((8, 40, 40)) == (8, 4, 4)
    assert embedding_shape((300, 3)) == (300, 1)  # more channels than the budget: one cell each
    y = torch.arange(2 * 8 * 40 * 40, dtype=torch.float32).reshape(2, 8, 40, 40)
    e = pool_embedding(y)
    assert e.shape == (2, 8 * 4 * 4) and e.dtype == np.float32
    assert np.array_equal(e, e.astype(np.float16).astype(np.float32))  # float16 precision


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_an_image_is_nearer_its_own_crop_than_another_photo():
    compressor = load_bundle(zoo_bundle("image-small"))
    a, b = (Image.open(_photo_dir() / p).convert("RGB") for p in PHOTOS[:2])
    w, h = a.size
    files = [_png(a), _png(a.crop((w // 20, h // 20, w - w // 20, h - h // 20))), _png(b)]
    e = compressor.embed([compressor.modality.load(f) for f in files])
    assert e.shape == (3, int(np.prod(compressor.query_latent_shape))) and e.shape[1] <= EMBEDDING_VALUES
    cos = lambda u, v: float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))  # noqa: E731
    assert cos(e[0], e[1]) > cos(e[0], e[2])
    assert np.array_equal(compressor.embed([compressor.modality.load(files[0])])[0], e[0])  # deterministic
