"""What a sample carries: each modality's typed record, through a payload's header and back."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from aecore import get_modality
from aecore.modalities import AudioInfo, ImageInfo, TextInfo
from aecore.payload import PAYLOAD_VERSION


def _png(mode: str, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65535 if mode == "I;16" else 255, (size[1], size[0], 3 if mode == "RGB" else 1))
    img = Image.fromarray(pixels.astype(np.uint16 if mode == "I;16" else np.uint8).squeeze(-1) if mode != "RGB"
                          else pixels.astype(np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    """Stereo 44.1 kHz, with two runs of digital silence."""
    rng = np.random.default_rng(1)
    left = np.concatenate([np.zeros(22050), 0.1 * rng.standard_normal(22050)])
    right = np.concatenate([0.1 * rng.standard_normal(30000), np.zeros(14100)])
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], 1).astype(np.float32), 44100, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("modality,data,kind,shape,unit", [
    ("image", _png("RGB", (37, 21)), ImageInfo, (21, 37, 3), ("bpp", 21 * 37)),
    ("image", _png("I;16", (9, 5)), ImageInfo, (5, 9, 1), ("bpp", 45)),
    ("audio", _wav(), AudioInfo, (44100, 2), ("kbps", 1000.0)),
    ("text", "héllo\n".encode(), TextInfo, (7,), ("bits_per_byte", 7)),
], ids=["rgb", "gray16", "stereo-with-silence", "text"])
def test_the_header_carries_the_record_and_nothing_else(modality, data, kind, shape, unit):
    mod = get_modality(modality)
    info = mod.load(data).info
    assert type(info) is kind and mod.info_type is kind
    assert info.shape == shape and info.rate_unit() == unit
    packed = info.pack()
    back, used = kind.unpack(packed + b"rest of the payload", PAYLOAD_VERSION)
    assert used == len(packed)
    assert back.pack() == packed and back.shape == info.shape and back.bits == info.bits
    assert back.positions == info.positions
    if kind is AudioInfo:
        assert (back.rate, back.resampled) == (44100, 16000) and len(back.silence) == 2
        np.testing.assert_array_equal(back.silence, info.silence)
        x = np.ones((1, back.positions[0]), np.float32)
        finished = back.finish(x)
        for start, length in back.silence:  # silent runs come back as zeros, the rest untouched
            assert not finished[0, start : start + length].any()
        assert finished.sum() == x.size - back.silence[:, 1].sum()
    else:
        x = np.ones((1, 4), np.float32)
        assert back.finish(x) is x


def test_a_version_3_audio_header_has_no_silent_runs():
    info = get_modality("audio").load(_wav()).info
    old = info.pack()[:22]  # frames, rate, channels, resampled frames: version 3 stops there
    back, used = AudioInfo.unpack(old, 3)
    assert used == 22 and back.shape == info.shape and len(back.silence) == 0


def test_a_piece_is_the_record_placed_on_it():
    info = get_modality("text").load(b"x" * 100).info
    piece = info.piece(64, (36,))
    assert (piece.offset, piece.extent, piece.piece_extent) == (64, (36,), (36,))
    assert (info.offset, info.extent, info.piece_extent) == (0, None, (100,))
