import io

import numpy as np
import pytest
import torch
from PIL import Image

from aecore import Compressor, FactorizedCategoricalCodec, UnreadableInput, build_model, get_modality
from aecore.registry import MODALITIES, lookup
from tests.conftest import png_bytes


@pytest.fixture
def compressor():
    torch.manual_seed(0)
    model = build_model("image-conv", "tiny")
    return Compressor(get_modality("image"), model.uniform_prior())


def test_codec_round_trip_is_exact():
    rng = np.random.default_rng(0)
    y_hat = np.rint(rng.laplace(0, 3, size=(12, 5, 7))).astype(np.float32)
    y_hat[0, 0, 0] = 200  # outside the support: clamped, not a crash
    hist = FactorizedCategoricalCodec(12).histogram(y_hat[None])
    codec = FactorizedCategoricalCodec.from_histogram(hist, 48)
    data = codec.compress(y_hat)
    back = codec.decompress(data, y_hat.shape)
    expected = np.clip(y_hat, -48, 48)
    np.testing.assert_array_equal(back, expected)
    # A fitted prior codes close to the ideal length.
    assert len(data) * 8 <= codec.bits_estimate(expected) + 64


@pytest.mark.parametrize("shape,mode", [((37, 50, 3), "RGB"), ((1, 1, 3), "RGB"), ((19, 8), "L"), ((16, 16, 4), "RGBA")])
def test_any_size_and_mode_restores_the_original_size(compressor, shape, mode):
    rng = np.random.default_rng(1)
    data = png_bytes(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)
    sample = compressor.modality.load(data)
    enc = compressor.encode([sample], [True])[0]
    assert enc.latent.shape == (int(np.prod(compressor.query_latent_shape)),)
    restored, x_hat, info = compressor.decode(enc.payload)
    with Image.open(io.BytesIO(restored)) as img:
        assert (img.height, img.width) == shape[:2]
        assert img.mode == ("L" if mode == "L" else "RGB")
    assert info.shape == sample.shape
    assert enc.quality is not None and "psnr" in enc.quality and "bpp" in enc.quality


def test_batches_of_mixed_sizes_match_single_encodes(compressor):
    rng = np.random.default_rng(2)
    samples = [compressor.modality.load(png_bytes(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)))
               for h, w in [(16, 16), (20, 33), (16, 16)]]
    together = compressor.encode(samples)
    alone = [compressor.encode([s])[0] for s in samples]
    assert [e.payload for e in together] == [e.payload for e in alone]


@pytest.mark.parametrize("data,reason", [(b"", "empty file"), (b"not an image at all", "not a readable image"),
                                          (png_bytes(np.zeros((8, 8, 3), np.uint8))[:40], "not a readable image")])
def test_unreadable_files_raise_one_line_errors(data, reason):
    with pytest.raises(UnreadableInput, match=reason) as info:
        get_modality("image").load(data)
    assert "\n" not in str(info.value)


def test_registry_lookup_suggests_the_nearest_name():
    with pytest.raises(KeyError, match="did you mean 'image'"):
        lookup(MODALITIES, "imgae", "modality")


def test_payload_version_is_checked(compressor):
    sample = compressor.modality.load(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    payload = compressor.encode([sample])[0].payload
    with pytest.raises(ValueError, match="payload version 9"):
        compressor.decode(bytes([9]) + payload[1:])


def test_16_bit_grayscale_round_trips_at_16_bits(compressor):
    ramp = (np.linspace(0, 65535, 24 * 20).reshape(24, 20)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    sample = compressor.modality.load(buf.getvalue())
    assert sample.info.bits == 16 and sample.shape == (24, 20, 1)
    restored, _, info = compressor.decode(compressor.encode([sample])[0].payload)
    with Image.open(io.BytesIO(restored)) as img:
        assert img.mode.startswith("I") and img.size == (20, 24)
        values = np.asarray(img)
    assert values.dtype != np.uint8 and values.max() > 255  # kept at 16 bits, not squeezed to 8
    assert info.bits == 16


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_inputs_restore_their_size(compressor, fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (21, 34, 3), dtype=np.uint8)).save(buf, format=fmt)
    sample = compressor.modality.load(buf.getvalue())
    restored, _, _ = compressor.decode(compressor.encode([sample])[0].payload)
    with Image.open(io.BytesIO(restored)) as img:
        assert img.size == (34, 21)


def test_a_tiny_payload_claiming_a_huge_image_is_refused_before_decoding():
    """Issue 27, item 13: a 28-byte payload that claims 2000 x 2000 pixels is corrupt, not decoded."""
    from aecore import dump_bundle, load_bundle
    from aecore.modalities.image import ImageInfo
    from aecore.payload import PAYLOAD_VERSION, PayloadError

    compressor = load_bundle(dump_bundle(build_model("image-conv", "tiny").uniform_prior(), "image-conv", "image"))
    payload = bytes([PAYLOAD_VERSION, 0]) + ImageInfo(shape=(2000, 2000, 3)).pack() + bytes(8)
    with pytest.raises(PayloadError, match="below any rate"):
        compressor.check_header(payload)
