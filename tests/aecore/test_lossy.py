"""The lossy classic codecs and the lossy best-codec choice (aecore.archive.lossy): the smallest
classic payload at least as good (PSNR) as the learned one, decoded to the picture it kept."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from aecore import load_bundle
from aecore.archive import FILE_CODECS, CodecContext, candidates, decode_payload, get_file_codec
from aecore.archive.lossy import ESTIMATE_MARGIN_DB, _first_ok, best_lossy, lossy_candidates
from aecore.metrics import psnr
from aecore.zoo import zoo_bundle
from jobs.sample_data import PHOTOS, _photo_dir


@pytest.fixture(scope="module")
def photo():
    img = Image.open(_photo_dir() / PHOTOS[0]).convert("RGB").resize((128, 96))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return load_bundle(zoo_bundle("image-small"), lossless=False).modality.load(buf.getvalue())


@pytest.mark.parametrize("codec_id", ["webp", "avif", "jxl"])
def test_each_lossy_codec_meets_a_target_and_restores_its_picture(photo, codec_id):
    codec = get_file_codec(codec_id)
    assert not codec.exact and codec.encode(b"\x89PNG", CodecContext()) is None  # never an exact candidate
    choice, sizes = best_lossy(photo.x, photo.info.pack(), 8, 30.0, 10**9, "max")
    assert choice is not None and sizes[codec_id] > 0 and len(choice.payload) == min(sizes.values())
    # the codec's own search: its payload meets the target and decodes to a PNG of those pixels
    only, _ = best_lossy(photo.x, photo.info.pack(), 8, 30.0, sizes[codec_id] + 1, "max")
    assert only is not None and len(only.payload) <= sizes[codec_id]
    restored = decode_payload(only.codec, only.payload, CodecContext())
    assert restored[:8] == b"\x89PNG\r\n\x1a\n"
    back = load_bundle(zoo_bundle("image-small"), lossless=False).modality.load(restored)
    assert back.x.shape == photo.x.shape and psnr(photo.x, back.x) == pytest.approx(only.psnr, abs=1e-6)
    assert only.psnr >= 30.0


def test_the_learned_payload_stays_when_it_is_smaller(photo):
    winner, sizes = best_lossy(photo.x, photo.info.pack(), 8, 30.0, 10, "default")
    assert winner is None and set(sizes) == {"webp", "avif", "jxl"}  # nothing beats 10 bytes; each was measured
    assert best_lossy(photo.x, photo.info.pack(), 16, 30.0, 10**9, "default") == (None, {})  # 16-bit: learned only
    assert best_lossy(photo.x, photo.info.pack(), 8, 99.0, 10**9, "default") == (None, {})  # no setting reaches it


@pytest.mark.parametrize("n", [1, 2, 7, 101])
def test_the_setting_search_finds_the_first_that_meets_the_target_from_any_hint(n):
    for first in [*range(n), None]:  # None: no setting reaches the target
        for hint in [None, *range(n), n + 3]:
            probes: list[int] = []

            def ok(i: int, first: int | None = first, probes: list = probes) -> bool:
                probes.append(i)
                return first is not None and i >= first

            assert _first_ok(n, ok, hint) == first
            assert len(probes) == len(set(probes)) and len(probes) <= 2 * max(1, n).bit_length() + 2
            if hint is not None and first is not None and hint == first:
                assert len(probes) <= 2  # the previous photo's setting: two probes


def test_a_hint_gives_the_same_choice_in_fewer_encodes(photo, monkeypatch):
    from aecore.archive.lossy import WebpCodec

    calls = []
    encode = WebpCodec.compress_pixels
    monkeypatch.setattr(WebpCodec, "compress_pixels", lambda self, *a: calls.append(1) or encode(self, *a))
    hints: dict[str, int] = {}
    cold = best_lossy(photo.x, photo.info.pack(), 8, 30.0, 10**9, "fast", hints=hints)
    cold_calls = len(calls)
    warm = best_lossy(photo.x, photo.info.pack(), 8, 30.0, 10**9, "fast", hints=hints)
    assert warm == cold and hints["webp"] == cold[0].setting
    assert len(calls) - cold_calls == 2 < cold_calls


def test_efforts_and_exact_archives():
    assert [c.codec_id for c in lossy_candidates("image", "fast")] == ["webp"]
    assert {c.codec_id for c in lossy_candidates("image", "default")} == {"webp", "avif", "jxl"}
    assert lossy_candidates("text", "max") == []
    for effort in ("fast", "default", "max"):  # an exact archive never tries a lossy codec
        assert all(c.exact for c in candidates("image", effort))
    assert {"webp", "avif", "jxl"} <= set(FILE_CODECS)


def test_a_corrupt_lossy_payload_is_refused_in_one_line(photo):
    choice, _ = best_lossy(photo.x, photo.info.pack(), 8, 28.0, 10**9, "fast")
    header_lie = choice.payload[:6] + (4000).to_bytes(4, "little") + choice.payload[10:]
    with pytest.raises(ValueError, match="the row is corrupt|over the image limit"):
        decode_payload("webp", header_lie, CodecContext())
    with pytest.raises(ValueError, match="not a jxl payload"):
        decode_payload("jxl", choice.payload, CodecContext())


def test_the_estimated_quality_is_within_the_margin_of_the_decoded_one(photo):
    """A lossy archive measures every photo on the float synthesis (the classic codecs' target);
    decode runs the exact one. The two agree within the margin the classic codecs must clear."""
    compressor = load_bundle(zoo_bundle("image-small"), lossless=False)
    estimated = compressor.encode([photo], [True], estimate=True)[0]
    exact = compressor.encode([photo], [True])[0]
    assert estimated.payload == exact.payload  # the payload never depends on how it is measured
    decoded = compressor.measure(photo, exact.payload)
    assert decoded == exact.quality
    assert abs(estimated.quality["psnr"] - decoded["psnr"]) < ESTIMATE_MARGIN_DB / 2
