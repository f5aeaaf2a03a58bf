"""Classic lossy image codecs with a learned post-filter (aecore.archive.postfilter): the payload
carries the classic bitstream (readable without aec), the shipped filters improve the decode, the
encoder's search measures the filtered picture, and weights other than the encoder's are refused."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from aecore import load_bundle
from aecore.archive import CodecContext, CodecUnavailable, decode_payload, get_file_codec, is_learned, model_modality
from aecore.archive import postfilter as pf_module
from aecore.archive.codec import split_classic
from aecore.archive.lossy import best_lossy, lossy_candidates
from aecore.archive.postfilter import PostFilterNet, apply_postfilter, load_postfilter, postfilter_metadata
from aecore.metrics import psnr
from aecore.modalities.image import ImageInfo
from aecore.zoo import zoo_bundle
from jobs.sample_data import PHOTOS, _photo_dir

FILTERED = ("avif-pf", "jxl-pf", "webp-pf")


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.asarray(Image.open(_photo_dir() / PHOTOS[0]).convert("RGB").resize((192, 144)))


@pytest.fixture(scope="module")
def photo(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return load_bundle(zoo_bundle("image-small"), lossless=False).modality.load(buf.getvalue())


def test_an_untrained_filter_is_the_identity(pixels):
    assert np.array_equal(apply_postfilter(PostFilterNet().eval(), pixels, 0.5), pixels)


def test_tall_pictures_are_filtered_in_stripes_as_in_one_pass(monkeypatch):
    torch.manual_seed(0)
    net = PostFilterNet(channels=16, blocks=2).eval()
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    tall = np.asarray(Image.fromarray((np.random.default_rng(1).random((30, 10, 3)) * 255).astype(np.uint8))
                      .resize((70, 1100), Image.Resampling.BICUBIC))
    striped = apply_postfilter(net, tall, 0.3)
    monkeypatch.setattr(pf_module, "_STRIPE_ROWS", 4096)
    whole = apply_postfilter(net, tall, 0.3)
    assert not np.array_equal(striped, tall)  # the net changed the picture
    diff = np.abs(striped.astype(int) - whole.astype(int))
    assert diff.max() <= 1 and diff.mean() < 1e-3  # float rounding only


@pytest.mark.parametrize("codec_id", FILTERED)
def test_the_shipped_filter_improves_its_codec_and_its_payload_holds_the_classic_bitstream(pixels, codec_id):
    codec = get_file_codec(codec_id)
    assert codec.weights_path().is_file(), f"the zoo ships {codec.weights_path().name}"
    meta = postfilter_metadata(codec.weights_path())
    assert meta["codec"] == codec.base.codec_id and meta["steps"] > 0 and meta["recipe"].startswith("python -m recipes")
    assert is_learned(codec_id) and model_modality(codec_id) is None  # a learned stage, no model of the archive's
    index = int(0.3 * (len(codec.settings) - 1))  # a low-middle rate
    stream = codec.compress(pixels, codec.settings[index], "default")
    payload = codec.payload(stream, ImageInfo(shape=(144, 192, 3), bits=8).pack())
    # a reader without aec: the classic codec's bitstream follows the header and 3 bytes
    found = split_classic(payload)
    assert found is not None and found[0] == codec_id
    classic = found[1][ImageInfo.unpack(found[1], 0)[1] + 3 :]
    plain = codec.base().decompress_pixels(classic)
    # the encoder sees the decoder: the quality its search compares is the filtered picture's
    restored = decode_payload(codec_id, payload, CodecContext())
    back = np.asarray(Image.open(io.BytesIO(restored)).convert("RGB"))
    assert psnr(pixels, back, peak=255.0) == pytest.approx(codec.quality(pixels, stream), abs=1e-9)
    assert psnr(pixels, back, peak=255.0) > psnr(pixels, plain, peak=255.0) + 0.05


def test_the_search_tries_the_filtered_codecs_and_each_meets_the_target(photo):
    assert {c.codec_id for c in lossy_candidates("image", "default")} >= set(FILTERED)
    assert not {c.codec_id for c in lossy_candidates("image", "fast")} & set(FILTERED)
    choice, sizes = best_lossy(photo.x, photo.info, 30.0, 10**9, "default")
    assert set(FILTERED) <= set(sizes) and choice is not None and len(choice.payload) == min(sizes.values())
    for codec_id in FILTERED:
        only, _ = best_lossy(photo.x, photo.info, 30.0, sizes[codec_id] + 1, "default")
        restored = decode_payload(only.codec, only.payload, CodecContext())
        back = load_bundle(zoo_bundle("image-small"), lossless=False).modality.load(restored)
        assert psnr(photo.x, back.x) >= 30.0 - 1e-6


def test_other_weights_or_none_are_refused_in_one_line(pixels, tmp_path, monkeypatch):
    codec = get_file_codec("avif-pf")
    stream = codec.compress(pixels, 40, "default")
    payload = codec.payload(stream, ImageInfo(shape=(144, 192, 3), bits=8).pack())
    at = len(payload) - len(stream)  # where the weights tag starts
    other = payload[:at] + bytes([payload[at] ^ 0xFF]) + payload[at + 1 :]
    with pytest.raises(CodecUnavailable, match=r"written with post-filter weights .*install the aec release"):
        decode_payload("avif-pf", other, CodecContext())
    monkeypatch.setattr(pf_module, "POSTFILTER_WEIGHTS", tmp_path)  # an installation without the weights
    assert not {c.codec_id for c in lossy_candidates("image", "max")} & set(FILTERED)
    with pytest.raises(CodecUnavailable, match="post-filter weights .* are not in this installation"):
        decode_payload("avif-pf", payload, CodecContext())


def test_weights_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    net = PostFilterNet(channels=8, blocks=1)
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    path = tmp_path / "f.safetensors"
    pf_module.save_postfilter(net, path, "avif", {"steps": 1, "recipe": "test"})
    loaded, tag = load_postfilter(path)
    assert len(tag) == 2 and postfilter_metadata(path)["config"] == {"channels": 8, "blocks": 1, "scale": 4}
    x = (np.random.default_rng(0).random((40, 36, 3)) * 255).astype(np.uint8)
    expect = apply_postfilter(net.half().float().eval(), x, 0.5)  # stored as float16
    assert np.array_equal(apply_postfilter(loaded, x, 0.5), expect)
