"""The codecs of an exact archive: each gives back the very bytes, the choice is the smallest
candidate, a payload names its codec, routing reads content first, decoders stop at the row's size."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from aecore.archive import FILE_CODECS, CodecContext, candidates, choose, decode_payload, payload_codec, route
from aecore.archive.classic import PayloadTooLarge
from jobs.sample_data import PHOTOS, _photo_dir


def _photo(name: str = "astronaut.png", size: int = 96) -> np.ndarray:
    with Image.open(_photo_dir() / name) as img:
        return np.asarray(img.convert("RGB"))[:size, :size]


def _png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _wav() -> bytes:
    t = np.arange(8000) / 8000
    sig = 0.3 * np.sin(2 * np.pi * 220 * t * (1 + t)) + 0.01 * np.random.default_rng(0).normal(size=t.size)
    buf = io.BytesIO()
    sf.write(buf, np.stack([sig, 0.5 * sig], 1).astype(np.float32), 8000, format="WAV", subtype="PCM_16")
    return buf.getvalue()


FILES = {
    "photo.png": lambda: _png(_photo()),
    "photo.jpg": lambda: _jpeg(_photo("coffee.png", size=256)),
    "tone.wav": _wav,
    "notes.txt": lambda: ("the quick brown fox jumps over the lazy dog\n" * 40).encode(),
    "noise.bin": lambda: os.urandom(3000),
    "empty": lambda: b"",
    "data.gz": lambda: gzip.compress(b"x" * 5000),
}


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("effort", ["fast", "default"])
def test_every_candidate_restores_the_file_and_the_smallest_wins(name, effort):
    data = FILES[name]()
    kind = route(name, data)
    ctx = CodecContext(effort=effort)
    choice = choose(data, kind, ctx)
    assert payload_codec(choice.payload) == choice.codec  # the payload names its codec
    assert decode_payload(choice.codec, choice.payload, ctx, len(data)) == data
    assert len(choice.payload) == min(choice.sizes.values())  # never larger than any candidate that applied
    assert len(choice.payload) <= len(data) + 8  # stored is always a candidate
    for codec in candidates(kind, effort):
        payload = codec.encode(data, ctx)
        if payload is not None:
            assert codec.decode(payload, ctx, len(data)) == data, codec.codec_id


def test_media_files_go_to_their_codecs_and_beat_storing_them():
    png, jpeg, wav = FILES["photo.png"](), FILES["photo.jpg"](), FILES["tone.wav"]()
    ctx = CodecContext()
    assert (route("a", png), route("a", jpeg), route("a", wav)) == ("image", "image", "audio")
    for data, codec in ((png, "jxl-png"), (jpeg, "jxl-jpeg"), (wav, "flac-wav"), (wav, "lms2-wav")):
        payload = FILE_CODECS[codec]().encode(data, ctx)
        assert payload is not None and len(payload) < len(data), codec
        assert decode_payload(codec, payload, ctx, len(data)) == data  # the very bytes: a JPEG stays that JPEG


def test_real_jpegs_restore_byte_identical_and_smaller():
    """scikit-image's JPEG samples (tests only, not figures): JPEG XL's transcode gives back the file."""
    ctx = CodecContext()
    for name in [p for p in PHOTOS if p.endswith(".jpg")]:
        data = (_photo_dir() / name).read_bytes()
        choice = choose(data, route(name, data), ctx)
        assert choice.codec == "jxl-jpeg" and len(choice.payload) < len(data), (name, choice.sizes)
        assert decode_payload(choice.codec, choice.payload, ctx, len(data)) == data


def test_routing_reads_content_before_names():
    assert route("photo.txt", FILES["photo.png"]()) == "image"  # magic bytes win over the name
    assert route("README", b"plain words\n") == "text"
    assert route("x.wav", b"\x00\x01garbage\x00") == "audio"  # no magic, not text: the name decides
    assert route("blob", os.urandom(64) + b"\x00") == "bytes"


def test_decoders_stop_at_the_rows_size():
    ctx = CodecContext()
    data = b"a" * 100_000
    for codec in ("zstd", "brotli", "xz", "ppmd"):
        payload = FILE_CODECS[codec]().encode(data, ctx)
        with pytest.raises((PayloadTooLarge, ValueError)):
            decode_payload(codec, payload, ctx, size=1000)


def test_the_collection_dictionary_pays_on_small_similar_files():
    from aecore.archive import train_dictionary

    rng = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "archive", "codec", "restore", "table", "model"]
    files = [("\n".join(f"record {i} {' '.join(rng.choice(words, 8))} value={rng.integers(1000)}" for i in range(20))
              ).encode() for _ in range(40)]
    dictionary = train_dictionary(files[:30])
    assert dictionary is not None
    plain, with_dict = CodecContext(effort="fast"), CodecContext(effort="fast", zstd_dictionary=dictionary)
    held_out = files[30:]
    a = sum(len(FILE_CODECS["zstd"]().encode(f, plain)) for f in held_out)
    b = sum(len(FILE_CODECS["zstd-dict"]().encode(f, with_dict)) for f in held_out)
    assert b < a
    payload = FILE_CODECS["zstd-dict"]().encode(held_out[0], with_dict)
    assert decode_payload("zstd-dict", payload, with_dict, len(held_out[0])) == held_out[0]
    with pytest.raises(ValueError, match="dictionary"):
        decode_payload("zstd-dict", payload, plain, len(held_out[0]))


def test_rgba_pngs_go_to_jpeg_xl_and_the_rest_are_still_archived_exactly():
    """RGBA (and grey + alpha) PNGs by JPEG XL with their recipe; palette and corrupt PNGs, which no
    recipe rebuilds, by a classic codec, byte for byte."""
    rgba = io.BytesIO()
    Image.fromarray(np.dstack([_photo(size=96), np.full((96, 96), 200, np.uint8)])).save(rgba, format="PNG")
    choice = choose(rgba.getvalue(), "image", CodecContext())
    assert choice.codec == "jxl-png" and len(choice.payload) < len(rgba.getvalue())
    palette = io.BytesIO()
    Image.fromarray(_photo(size=32)).convert("P").save(palette, format="PNG")
    corrupt = _png(_photo(size=32))[:-40] + zlib.compress(b"junk")
    for data in (rgba.getvalue(), palette.getvalue(), corrupt):
        choice = choose(data, "image", CodecContext())
        assert decode_payload(choice.codec, choice.payload, CodecContext(), len(data)) == data
