"""Audio: any rate, channel count and length restores to the original rate, channels and frames."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch

from aecore import Compressor, UnreadableInput, build_model, build_objective, get_modality


@pytest.fixture(scope="module")
def compressor():
    torch.manual_seed(0)
    model = build_model("audio-conv", "tiny", chunk=8192)  # small chunks: longer clips take several pieces
    return Compressor(get_modality("audio"), model.uniform_prior())


def clip(rate: int, channels: int, seconds: float, fmt: str, subtype: str | None = None) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    x = np.stack([0.4 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], 1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.mark.parametrize("rate,channels,seconds,fmt,subtype", [
    (44100, 2, 1.0, "WAV", "PCM_16"), (8000, 8, 0.4, "FLAC", None), (22050, 1, 0.05, "OGG", "VORBIS"),
    (48000, 1, 0.0, "WAV", "FLOAT"), (16000, 1, 2.0, "OGG", "OPUS"),
], ids=["wav-stereo", "flac-8ch", "ogg-50ms", "empty", "opus-chunked"])
def test_round_trip_restores_rate_channels_and_length(compressor, rate, channels, seconds, fmt, subtype):
    data = clip(rate, channels, seconds, fmt, subtype)
    sample = compressor.modality.load(data)
    enc = compressor.encode([sample], [True])[0]
    restored, _, info = compressor.decode(enc.payload)
    frames, restored_rate = sf.read(io.BytesIO(restored), always_2d=True)
    original, _ = sf.read(io.BytesIO(data), always_2d=True)
    assert restored_rate == rate
    assert frames.shape == original.shape
    assert {"snr", "lsd", "kbps"} <= set(enc.quality)


@pytest.mark.parametrize("data", [b"", b"RIFF....WAVEfmt garbage", b"OggS" + bytes(200), b"fLaC" + bytes(50)])
def test_unreadable_audio_is_a_one_line_error(data):
    with pytest.raises(UnreadableInput) as info:
        get_modality("audio").load(data)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("model_name,modality", [("audio-conv", "audio"), ("text-byte", "text"), ("image-conv", "image")])
def test_each_modality_model_learns(model_name, modality):
    torch.manual_seed(0)
    model = build_model(model_name, "tiny")
    mod = get_modality(modality)
    rng = np.random.default_rng(0)
    if modality == "audio":
        sample = mod.load(clip(16000, 1, 1.0, "WAV"))
    elif modality == "text":
        sample = mod.load(b"the quick brown fox jumps over the lazy dog. " * 40)
    else:
        from tests.conftest import png_bytes
        sample = mod.load(png_bytes(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))[..., None].repeat(3, 2)))
    x = torch.from_numpy(mod.training_patches(sample, model.native_size, 8, rng))
    objective = build_objective({"plain": None}, lmbda=0.01)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        terms = objective(model, x)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses[::5]


def test_an_odd_sample_rate_is_refused_on_both_sides():
    """Issue 27, item 15: a 2 KB WAV at 9,999,991 Hz is an unreadable input, not minutes of resampling;
    a payload claiming such a rate is refused at decode."""
    import io

    import numpy as np
    import pytest
    import soundfile as sf

    from aecore import get_modality
    from aecore.modalities import UnreadableInput
    from aecore.modalities.audio import AudioInfo

    buf = io.BytesIO()
    sf.write(buf, np.zeros((1000, 1), np.float32), 9_999_991, format="WAV", subtype="PCM_16")
    with pytest.raises(UnreadableInput, match="sample rate 9999991 Hz is outside"):
        get_modality("audio").load(buf.getvalue())
    claimed = AudioInfo(shape=(1000, 1), rate=9_999_991, resampled=10).pack()
    with pytest.raises(ValueError, match="sample rate"):
        AudioInfo.unpack(claimed, 4)
