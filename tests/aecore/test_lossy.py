"""The lossy classic codecs and the lossy best-codec choice (aecore.archive.lossy): the smallest
classic payload at least as good as the learned one (PSNR for photos, SNR for sound), decoded
to the picture or the sound it kept."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from aecore import load_bundle
from aecore.archive import FILE_CODECS, CodecContext, candidates, decode_payload, get_file_codec
from aecore.archive.codec import classic_payload, split_classic
from aecore.archive.lossy import (
    ESTIMATE_MARGIN,
    ESTIMATE_MARGIN_DB,
    _first_ok,
    _ogg_crc,
    best_lossy,
    compact_opus_tags,
    lossy_candidates,
)
from aecore.metrics import psnr
from aecore.modalities.audio import AudioInfo
from aecore.payload import PAYLOAD_VERSION
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
    choice, sizes = best_lossy(photo.x, photo.info, 30.0, 10**9, "max")
    assert choice is not None and sizes[codec_id] > 0 and len(choice.payload) == min(sizes.values())
    # the codec's own search: its payload meets the target and decodes to a PNG of those pixels
    only, _ = best_lossy(photo.x, photo.info, 30.0, sizes[codec_id] + 1, "max")
    assert only is not None and len(only.payload) <= sizes[codec_id]
    restored = decode_payload(only.codec, only.payload, CodecContext())
    assert restored[:8] == b"\x89PNG\r\n\x1a\n"
    back = load_bundle(zoo_bundle("image-small"), lossless=False).modality.load(restored)
    assert back.x.shape == photo.x.shape and psnr(photo.x, back.x) == pytest.approx(only.quality, abs=1e-6)
    assert only.quality >= 30.0


def test_the_learned_payload_stays_when_it_is_smaller(photo):
    winner, sizes = best_lossy(photo.x, photo.info, 30.0, 10, "default")
    # nothing beats 10 bytes; each was measured (the post-filtered ones too: tests/aecore/test_postfilter.py)
    assert winner is None and set(sizes) == {"webp", "avif", "jxl", "webp-pf", "avif-pf", "jxl-pf"}
    deep = dataclasses.replace(photo.info, bits=16)
    assert best_lossy(photo.x, deep, 30.0, 10**9, "default") == (None, {})  # 16-bit: learned only
    assert best_lossy(photo.x, photo.info, 99.0, 10**9, "default") == (None, {})  # no setting reaches it


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
    cold = best_lossy(photo.x, photo.info, 30.0, 10**9, "fast", hints=hints)
    cold_calls = len(calls)
    warm = best_lossy(photo.x, photo.info, 30.0, 10**9, "fast", hints=hints)
    assert warm == cold and hints["webp"] == cold[0].setting
    assert len(calls) - cold_calls == 2 < cold_calls


def test_efforts_and_exact_archives():
    assert [c.codec_id for c in lossy_candidates("image", "fast")] == ["webp"]
    assert {c.codec_id for c in lossy_candidates("image", "default")} == {"webp", "avif", "jxl", "webp-pf", "avif-pf",
                                                                          "jxl-pf"}
    assert lossy_candidates("text", "max") == []
    assert [c.codec_id for c in lossy_candidates("audio", "default")] == ["opus"]
    for effort in ("fast", "default", "max"):  # an exact archive never tries a lossy codec
        assert all(c.exact for c in candidates("image", effort))
    assert {"webp", "avif", "jxl", "opus"} <= set(FILE_CODECS)


def test_a_corrupt_lossy_payload_is_refused_in_one_line(photo):
    choice, _ = best_lossy(photo.x, photo.info, 28.0, 10**9, "fast")
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


@pytest.fixture(scope="module")
def sound():
    """A 1.5 s stereo clip at 44.1 kHz with a run of digital silence (the kinds of file a
    lossy audio job meets), as the audio modality loads it."""
    rate = 44_100
    t = np.arange(int(1.5 * rate)) / rate
    rng = np.random.default_rng(3)
    left = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + 0.01 * np.sin(2 * np.pi * 3 * t))) + 0.02 * rng.standard_normal(t.size)
    right = 0.2 * np.sin(2 * np.pi * 330 * t)
    x = np.stack([left, right], axis=1)
    x[rate // 2 : rate] = 0.0
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return load_bundle(zoo_bundle("audio-small"), lossless=False).modality.load(buf.getvalue())


def test_opus_meets_an_snr_target_and_restores_the_sound_at_its_own_rate(sound):
    choice, sizes = best_lossy(sound.x, sound.info, 12.0, 10**9, "default", "audio")
    assert choice is not None and choice.codec == "opus" and choice.quality >= 12.0 and sizes == {"opus": len(choice.payload)}
    # a higher target takes a higher bit rate
    higher, _ = best_lossy(sound.x, sound.info, 20.0, 10**9, "default", "audio")
    assert higher.setting > choice.setting and len(higher.payload) > len(choice.payload) and higher.quality >= 20.0
    restored = decode_payload("opus", choice.payload, CodecContext())
    back, rate = sf.read(io.BytesIO(restored), always_2d=True)
    assert rate == 44_100 and back.shape == (sound.info.shape[0], 2)  # the file's own rate, frames and channels
    assert not back[44_100 // 2 + 200 : 44_100 - 200].any()  # digital silence restored as silence
    modality = load_bundle(zoo_bundle("audio-small"), lossless=False).modality
    again = modality.load(restored)
    snr = modality.quality(sound.x, again.x)["snr"]  # measured again through the 16-bit WAV and both resamplings
    assert snr == pytest.approx(choice.quality, abs=0.5)
    # the bitstream is an Ogg Opus file any player reads, after aec's header
    assert b"OggS" in choice.payload[:64] and b"OpusHead" in choice.payload[:128]


def test_the_learned_sound_stays_when_opus_cannot_match_it(sound):
    assert best_lossy(sound.x, sound.info, 12.0, 10, "default", "audio")[0] is None  # nothing beats 10 bytes
    assert best_lossy(sound.x, sound.info, 80.0, 10**9, "default", "audio") == (None, {})  # Opus tops out ~35 dB


def test_a_corrupt_opus_payload_is_refused_in_one_line(sound):
    choice, _ = best_lossy(sound.x, sound.info, 8.0, 10**9, "default", "audio")
    found = split_classic(choice.payload)
    info, used = AudioInfo.unpack(found[1], PAYLOAD_VERSION)
    lie = dataclasses.replace(info, resampled=info.resampled * 1000, shape=(info.shape[0] * 1000, 2))
    forged = classic_payload("opus", lie.pack() + found[1][used:])  # a header claiming 1000x the frames
    with pytest.raises(ValueError, match="bitstream holds .* frames, its header says"):
        decode_payload("opus", forged, CodecContext())
    three = classic_payload("opus", dataclasses.replace(info, shape=(info.shape[0], 3)).pack() + found[1][used:])
    with pytest.raises(ValueError, match="holds 2 channels, its header says 3"):
        decode_payload("opus", three, CodecContext())
    with pytest.raises(ValueError, match="not an opus payload"):
        decode_payload("opus", b"\xac\x04webp" + found[1], CodecContext())


def test_the_estimated_snr_is_within_the_margin_of_the_decoded_one(sound):
    compressor = load_bundle(zoo_bundle("audio-small"), lossless=False)
    estimated = compressor.encode([sound], [True], estimate=True)[0]
    decoded = compressor.measure(sound, estimated.payload)
    assert abs(estimated.quality["snr"] - decoded["snr"]) < ESTIMATE_MARGIN["snr"] / 2


def test_opus_files_drop_the_comment_headers_padding_and_stay_valid_ogg(sound):
    ref, _ = get_file_codec("opus").prepare(sound.x, sound.info)
    buf = io.BytesIO()
    sf.write(buf, ref.T, 16_000, format="OGG", subtype="OPUS", compression_level=1.0)
    padded = buf.getvalue()
    compact = compact_opus_tags(padded)
    assert len(padded) - len(compact) > 500  # libsndfile's zero padding of the tags
    assert np.array_equal(sf.read(io.BytesIO(padded))[0], sf.read(io.BytesIO(compact))[0])
    pos, pages = 0, 0
    while pos < len(compact):  # every page's checksum verifies (the one rewritten too)
        assert compact[pos : pos + 4] == b"OggS"
        end = pos + 27 + compact[pos + 26] + sum(compact[pos + 27 : pos + 27 + compact[pos + 26]])
        page = bytearray(compact[pos:end])
        crc, page[22:26] = bytes(page[22:26]), bytes(4)
        assert _ogg_crc(bytes(page)).to_bytes(4, "little") == crc
        pos, pages = end, pages + 1
    assert pages >= 3 and compact_opus_tags(b"not ogg") == b"not ogg"
