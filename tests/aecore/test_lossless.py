"""Lossless mode restores files byte for byte: PNG and WAV rebuilt by their containers, other
formats stored as they are, text as bytes; and the wide residual coder is exact."""

import io
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image, PngImagePlugin

from aecore import Compressor, build_model, get_modality
from aecore.codecs import LaplaceResidualCodec
from aecore.containers import PngContainer, WavContainer
from aecore.containers.png import _chunk

RNG = np.random.default_rng(7)


def lossless(modality: str, model: str, **overrides) -> Compressor:
    torch.manual_seed(0)
    m = build_model(model, "tiny", **overrides)
    return Compressor(get_modality(modality), m.uniform_prior(), lossless=True)


def round_trip(comp: Compressor, data: bytes) -> dict:
    enc = comp.encode([comp.load(data)], [True])[0]
    restored, _, _ = comp.decode(enc.payload)
    assert restored == data, "not byte-identical"
    return enc.quality


def photo(h: int, w: int, channels: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [(np.sin(xx / (5 + 3 * c)) * 60 + yy * 0.7 + 90 + RNG.normal(0, 4, (h, w))) for c in range(channels)]
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def pillow_png(array: np.ndarray, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **options)
    return buf.getvalue()


def zlib_png(array: np.ndarray, level: int, flush_rows: bool = False) -> bytes:
    """A PNG written the way libpng-style writers do (Up filter, Python's zlib), not by Pillow."""
    h, w, c = array.shape
    raw = array.reshape(h, w * c).astype(np.int16)
    up = (raw - np.vstack([np.zeros((1, w * c), np.int16), raw[:-1]])) & 0xFF
    lines = [b"\x02" + row.astype(np.uint8).tobytes() for row in up]
    z = zlib.compressobj(level, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY)
    # flush_rows: a stream no plain zlib setting reproduces (a sync flush after every row)
    stream = b"".join(z.compress(line) + (z.flush(zlib.Z_SYNC_FLUSH) if flush_rows else b"") for line in lines) + z.flush()
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2 if c == 3 else 0, 0, 0, 0)
    half = len(stream) // 2
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream[:half]) + _chunk(b"IDAT", stream[half:])
            + _chunk(b"IEND", b""))


def with_text_chunk(array: np.ndarray) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "a photo with metadata")
    return pillow_png(array, pnginfo=info)


@pytest.fixture(scope="module")
def images() -> Compressor:
    return lossless("image", "image-conv")


@pytest.mark.parametrize("data", [
    pillow_png(photo(40, 56)), pillow_png(photo(33, 17, 1)[..., 0]), pillow_png(photo(40, 56), compress_level=1),
    pillow_png(photo(40, 56), compress_level=9), pillow_png(photo(40, 56), optimize=True),
    pillow_png((photo(24, 20, 1)[..., 0].astype(np.uint16) * 257 + 3).astype(np.uint16)), pillow_png(photo(1, 1)),
    with_text_chunk(photo(12, 30)), zlib_png(photo(30, 22), 9), zlib_png(photo(30, 22, 1), 4),
], ids=["rgb", "gray", "level1", "level9", "optimize", "16bit", "1x1", "text-chunk", "zlib-writer", "zlib-gray"])
def test_pngs_are_rebuilt_byte_for_byte(images, data):
    quality = round_trip(images, data)
    assert quality["exact"] == 1.0 and quality["stored"] == 0.0  # rebuilt from the coded pixels


def jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def palette_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).convert("P").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("data", [
    jpeg(photo(20, 24)), pillow_png(np.dstack([photo(9, 9), np.full((9, 9, 1), 128, np.uint8)])),
    palette_png(photo(10, 10)), zlib_png(photo(16, 16), 6, flush_rows=True),
], ids=["jpeg", "rgba", "palette", "unreproducible-deflate"])
def test_files_no_container_rebuilds_are_stored_as_they_are(images, data):
    quality = round_trip(images, data)
    assert quality["stored"] == 1.0


def test_rebuilt_png_pays_for_pixels_not_for_the_file(images):
    """The recipe of a Pillow PNG is a few dozen bytes: the payload is the coded pixels."""
    data = pillow_png(photo(48, 64))
    parsed = PngContainer().parse(data, np.asarray(Image.open(io.BytesIO(data))).astype(np.int32))
    assert parsed is not None and len(parsed.recipe) < 120


def wav(frames: np.ndarray, rate: int, subtype: str, title: str | None = None) -> bytes:
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", rate, frames.shape[1], subtype, format="WAV") as f:
        if title:
            f.title = title  # written as a LIST/INFO chunk
        f.write(frames)
    return buf.getvalue()


def tones(rate: int, channels: int, seconds: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.stack([0.3 * np.sin(2 * np.pi * (220 + 70 * c) * t) + RNG.normal(0, 0.01, t.shape) for c in range(channels)], 1)


@pytest.fixture(scope="module")
def audio() -> Compressor:
    return lossless("audio", "audio-conv", chunk=6000)  # small pieces: clips take several


@pytest.mark.parametrize("data", [
    wav(tones(16000, 1, 1.0), 16000, "PCM_16"), wav(tones(44100, 2, 0.5), 44100, "PCM_16"),
    wav(tones(8000, 8, 0.4), 8000, "PCM_16"), wav(tones(22050, 1, 0.05), 22050, "PCM_16"),
    wav(tones(11025, 1, 0.3), 11025, "PCM_U8"), wav(tones(16000, 2, 0.2), 16000, "PCM_16", title="with a LIST chunk"),
    wav(np.zeros((0, 1)), 16000, "PCM_16"), wav(tones(22050, 2, 0.1), 22050, "PCM_16"),
    wav(tones(8000, 3, 0.2), 8000, "PCM_U8"),
], ids=["mono-16k", "stereo-44k-chunked", "8-channels", "50ms", "8-bit", "list-chunk", "empty", "stereo-one-piece",
        "3-channels-8-bit-one-piece"])
def test_wavs_are_rebuilt_byte_for_byte(audio, data):
    quality = round_trip(audio, data)
    assert quality["stored"] == 0.0


def other_audio(fmt: str, subtype: str) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tones(16000, 1, 0.3), 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("WAV", "PCM_24"), ("WAV", "FLOAT")])
def test_other_audio_is_stored_as_it_is(audio, fmt, subtype):
    assert round_trip(audio, other_audio(fmt, subtype))["stored"] == 1.0


def test_wav_values_are_the_pcm_samples():
    frames = np.array([[0.0, -1.0], [0.5, 1.0 - 2**-15]])
    parsed = WavContainer().parse(wav(frames, 8000, "PCM_16"))
    assert parsed.bits == 16
    assert parsed.values.tolist() == [[32768, 32768 + 16384], [0, 65535]]  # levels = sample + 32768


def test_text_via_load_is_byte_exact_and_never_stored():
    comp = lossless("text", "text-byte", chunk=512)
    for data in (b"", "naïve café ✓\n".encode() * 80, b"\xff\xfe\x00 not utf-8 \xc3("):
        assert round_trip(comp, data)["stored"] == 0.0


@pytest.mark.parametrize("levels", [256, 65536])
def test_laplace_residual_codec_is_exact_and_near_the_entropy(levels):
    codec = LaplaceResidualCodec(levels)
    n = 20_000
    means = np.linspace(0, levels - 1, n)
    scale = 3.0 if levels == 256 else 40.0
    values = np.clip(np.rint(means + RNG.laplace(0, scale, n)), 0, levels - 1).astype(np.int32)
    values[:3] = [0, levels - 1, 0]  # the ends of the range, far from their predictions
    data = codec.compress(values, means, means.shape)
    assert np.array_equal(codec.decompress(data, means, means.shape), values)
    entropy = np.log2(2 * np.e * scale)  # bits of a Laplace of that scale, per value
    assert 8 * len(data) / n < entropy + 0.3
    assert codec.decompress(codec.compress(np.zeros(0, np.int32), np.zeros(0), (0,)), np.zeros(0), (0,)).size == 0


def test_a_better_prediction_costs_fewer_bits():
    codec = LaplaceResidualCodec(65536)
    truth = np.rint(32768 + RNG.normal(0, 4000, 8192)).astype(np.int32)  # white: no difference helps
    near = codec.compress(truth, truth + RNG.normal(0, 5, truth.shape), (1, truth.size))
    far = codec.compress(truth, truth + RNG.normal(0, 500, truth.shape), (1, truth.size))
    assert len(near) < len(far) / 2


@pytest.mark.parametrize("shape", [(1, 5000), (3, 37, 53), (1, 1, 1), (2, 700)])
def test_decorrelating_choices_round_trip_and_help_a_poor_prediction(shape):
    """A smooth signal predicted badly: differences (of values or residual) take over, exactly."""
    codec = LaplaceResidualCodec(65536)
    grid = np.indices(shape).sum(axis=0).astype(np.float64)
    truth = np.rint(30000 + 9000 * np.sin(grid / 9.0) + RNG.normal(0, 2, shape)).astype(np.int32)
    poor = truth + RNG.normal(0, 3000, shape)
    data = codec.compress(truth, poor, shape)
    assert np.array_equal(codec.decompress(data, poor, shape), truth.reshape(-1))
    if truth.size > 1000:
        mean_only = np.log2(2 * np.e * 3000)  # what coding around the poor prediction alone costs
        assert 8 * len(data) / truth.size < mean_only - 4


def rgb16_png(values: np.ndarray) -> bytes:
    """A 16-bit RGB PNG using every filter type (rows cycle through 0-4), as libpng writes them."""
    from aecore.containers.png import _IHDR, _SIGNATURE, _filter, _scanlines

    h, w, _ = values.shape
    stream = zlib.compress(_filter(_scanlines(values, 16), 6, np.arange(h, dtype=np.uint8) % 5), 9)
    return _SIGNATURE + _chunk(b"IHDR", _IHDR.pack(w, h, 16, 2, 0, 0, 0)) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def test_16_bit_rgb_png_is_read_written_and_rebuilt_at_16_bits(images):
    from aecore.containers.png import read_png16

    values = (photo(23, 31).astype(np.uint16) * 257 + RNG.integers(0, 200, (23, 31, 3))).astype(np.uint16)
    data = rgb16_png(values)
    assert np.array_equal(read_png16(data), values)  # every filter type undone exactly
    sample = images.modality.load(data)
    assert sample.info.bits == 16 and sample.shape == (23, 31, 3)
    assert round_trip(images, data)["stored"] == 0.0  # lossless: rebuilt byte for byte
    lossy = Compressor(images.modality, images.model)
    restored, _, _ = lossy.decode(lossy.encode([sample])[0].payload)
    back = read_png16(restored)
    assert back is not None and back.shape == (23, 31, 3) and back.max() > 255  # kept at 16 bits


def test_lossless_audio_without_its_file_is_a_clear_error(audio):
    sample = audio.modality.load(wav(tones(16000, 1, 0.1), 16000, "PCM_16"))  # not Compressor.load
    with pytest.raises(ValueError, match="load the file with Compressor.load"):
        audio.encode([sample])


def test_a_file_that_trips_a_container_is_stored_not_lost(images, monkeypatch):
    def broken(self, data, values=None):
        raise struct.error("unpack requires a buffer of 13 bytes")

    monkeypatch.setattr(PngContainer, "parse", broken)
    assert round_trip(images, pillow_png(photo(8, 8)))["stored"] == 1.0


def test_each_piece_uses_the_model_only_where_its_latents_pay(images, monkeypatch):
    """With the untrained decoder the latents do not pay on a photo and the piece is coded by the
    classic predictors alone; with a decoder that reconstructs it exactly (an oracle in place of
    g_s) they do and are kept. Both restore byte for byte."""
    data = pillow_png(photo(40, 48))
    sample = images.load(data)
    untrained = images.encode([sample], [True])[0]
    assert untrained.quality["model_used"] == 0.0
    oracle = sample.x.copy()  # 40x48 is already a multiple of the stride (8): no padding
    monkeypatch.setattr(Compressor, "_synthesize", lambda self, y_hat, fast=False: oracle)
    predicted = images.encode([sample], [True])[0]
    assert predicted.quality["model_used"] == 1.0
    assert images.decode(predicted.payload)[0] == data
    assert len(predicted.payload) < len(untrained.payload) / 4


def test_full_scale_values_against_the_worst_prediction_stay_exact():
    """Full-scale alternating values and blocks, predicted at the far end of the range: the
    largest errors any choice can make, still coded within range and restored exactly."""
    codec = LaplaceResidualCodec(65536)
    wild = np.tile(np.array([0, 65535], np.int32), 3000)
    for means in (np.full(wild.shape, 65535.0), np.zeros(wild.shape)):
        data = codec.compress(wild, means, (1, wild.size))
        assert np.array_equal(codec.decompress(data, means, (1, wild.size)), wild)
    square = np.kron(RNG.integers(0, 2, (3, 8, 8)) * 65535, np.ones((1, 4, 4), np.int64)).astype(np.int32)
    data = codec.compress(square, 65535.0 - square, square.shape)
    assert np.array_equal(codec.decompress(data, 65535.0 - square, square.shape), square.reshape(-1))


def test_a_deflate_bomb_in_a_png_recipe_stops_at_its_bound():
    """Issue 27, item 12: a 300 KB recipe that inflates to 300 MB is refused, not inflated."""
    from aecore.containers import get_container
    from aecore.containers.png import _HEAD

    head = _HEAD.pack(8, 3, 4, 4, 9, 9, 0, 15) + struct.pack("<III", 300 * 2**20, 0, 0)
    bomb = zlib.compress(head + bytes(300 * 2**20), 9)
    assert len(bomb) < 400_000
    png = get_container("png")
    assert png.bits(bomb) == 8  # the header alone is read
    with pytest.raises(ValueError, match="inflates past"):
        png.build(np.zeros((4, 4, 3), np.uint8), bomb)


def test_a_large_16_bit_rgb_png_reads_with_a_library_decoder():
    """Issue 27, item 14: 16-bit RGB PNGs decode in libpng (imagecodecs), not a per-pixel Python loop."""
    from aecore.containers.png import read_png16, write_png

    values = (np.random.default_rng(0).random((1000, 1000, 3)) * 65535).astype(np.uint16)
    values[:, :500] = 1234  # a flat half: what made the old loop crawl
    assert np.array_equal(read_png16(write_png(values, 16)), values)
