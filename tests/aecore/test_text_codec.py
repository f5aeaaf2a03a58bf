"""Text round trips byte-exact, whatever the bytes and the length."""

import numpy as np
import pytest
import torch

from aecore import Compressor, build_model, get_modality


@pytest.fixture(scope="module")
def compressor():
    torch.manual_seed(0)
    model = build_model("text-byte", "tiny", chunk=1024)  # small chunks: long inputs take several pieces
    return Compressor(get_modality("text"), model.uniform_prior())


@pytest.mark.parametrize("data", [
    b"", b"a", "héllo wörld, ünïcode ✓\n".encode(), b"caf\xe9 \xff\xfe\x00\x01 invalid \xc3(",
    bytes(range(256)) * 9, np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
], ids=["empty", "one", "utf8", "invalid-utf8", "all-bytes-chunked", "random-chunked"])
def test_lossless_round_trip_is_byte_exact(compressor, data):
    sample = compressor.modality.load(data)
    enc = compressor.encode([sample], [True])[0]
    restored, _, info = compressor.decode(enc.payload)
    assert restored == data
    assert info.shape == (len(data),)
    assert enc.quality["exact"] == 1.0
    assert enc.latent.shape == (int(np.prod(compressor.query_latent_shape)),)


def test_a_batch_encodes_like_single_files(compressor):
    samples = [compressor.modality.load(d) for d in (b"abc" * 100, b"", b"xyz" * 700)]
    together = [e.payload for e in compressor.encode(samples)]
    alone = [compressor.encode([s])[0].payload for s in samples]
    assert together == alone
