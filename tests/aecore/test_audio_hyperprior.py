"""The hyperprior family on signals: 1-D transforms around the shared latent codec, the
multi-resolution STFT loss, and restores that are the same bytes in any process or thread count."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from aecore import build_model, dump_bundle, load_bundle
from aecore.models.audio_hyperprior import stft_loss
from aecore.zoo import zoo_bundle
from tests.aecore.test_hyperprior import _DECODE


def _wav(seconds: float, rate: int = 16000, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-t) + 0.05 * np.sin(2 * np.pi * 3000 * t)
    x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_shapes_rate_points_and_the_loss():
    torch.manual_seed(0)
    m = build_model("audio-hyperprior", "tiny").train()
    x = torch.randn(3, 1, m.patch_size) * 0.1
    out = m(x)
    assert out["x_hat"].shape == x.shape and out["y"].shape == (3, 16, m.patch_size // m.stride)
    assert m.distortion(x, out).item() > 0 and out["bits"].shape == (3,)
    assert stft_loss(x, x).abs().max().item() < 1e-5  # identical signals: no loss
    noisy = x + 0.05 * torch.randn_like(x)
    assert (stft_loss(x, noisy) > 0.1).all()
    m.distortion(x, out).backward()  # the STFT term is differentiable
    assert m.synthesis[0].weight.grad is not None


def test_a_clip_restores_the_same_bytes_in_another_process_on_two_threads(tmp_path):
    """Stereo at 44.1 kHz, longer than one chunk's tile: encode on one thread, decode here and in a
    fresh process on two threads."""
    torch.manual_seed(1)
    model = build_model("audio-hyperprior", "tiny", chunk=16000).eval()
    model.update_tables()
    blob = dump_bundle(model, "audio-hyperprior", "audio")
    torch.set_num_threads(1)
    try:
        comp = load_bundle(blob)
        sample = comp.load(_wav(2.5, rate=44100, channels=2))
        enc = comp.encode([sample], [True])[0]
        here, _, _ = comp.decode(enc.payload, list(sample.shape))
    finally:
        torch.set_num_threads(2)
    restored, rate = sf.read(io.BytesIO(here), always_2d=True)
    assert rate == 44100 and restored.shape == (int(2.5 * 44100), 2)
    assert set(enc.quality) >= {"snr", "lsd", "kbps"}
    (tmp_path / "m").write_bytes(blob)
    (tmp_path / "p").write_bytes(enc.payload)
    there = subprocess.run([sys.executable, "-c", _DECODE, "2", str(tmp_path / "m"), str(tmp_path / "p")],
                           capture_output=True, check=True).stdout
    assert there == here


def test_the_zoo_model_restores_a_clip_the_same_bytes_in_another_process(tmp_path):
    """The shipped weights, not a random model: each rate point codes a clip below 16 kbit/s with
    a usable SNR, rates grow with the rate point, and the restore is the same bytes on two threads
    in a fresh process as here on one."""
    blob = zoo_bundle("audio-small")
    clip = _wav(3.0)
    rates, snrs = [], []
    for q in (1.0, 2.0, 3.0):
        comp = load_bundle(blob, rate_point=q)
        sample = comp.load(clip)
        torch.set_num_threads(1)
        try:
            enc = comp.encode([sample], [True])[0]
            here, _, _ = comp.decode(enc.payload, list(sample.shape))
        finally:
            torch.set_num_threads(2)
        rates.append(len(enc.payload) * 8 / 3.0 / 1000)
        snrs.append(enc.quality["snr"])
    assert rates == sorted(rates) and rates[-1] < 16, rates
    assert snrs == sorted(snrs) and snrs[0] > 3, snrs
    (tmp_path / "m").write_bytes(blob)
    (tmp_path / "p").write_bytes(enc.payload)
    there = subprocess.run([sys.executable, "-c", _DECODE, "2", str(tmp_path / "m"), str(tmp_path / "p")],
                           capture_output=True, check=True).stdout
    assert there == here


def test_a_signal_longer_than_a_chunk_has_no_seam_at_the_chunk_boundaries():
    """Pieces of a long signal are spans of one latent sequence (the payload's joint flag),
    analysed and synthesized whole: around the boundaries the error is no worse than mid-chunk,
    where pieces coded apart left a click at every boundary."""
    from aecore.bundle import build_from_bundle, read_bundle
    from aecore.compressor import Compressor
    from aecore.modalities import get_modality
    from aecore.payload import JOINT

    model = build_from_bundle(read_bundle(zoo_bundle("audio-small")), chunk=4800)  # 0.3 s pieces
    comp = Compressor(get_modality("audio"), model)
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    x = (0.2 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    enc = comp.encode([comp.load(buf.getvalue())])[0]
    assert enc.payload[1] & JOINT
    _, y, _ = comp.decode(enc.payload)
    err = (y[0] - x) ** 2

    def around(points: range) -> float:
        return float(np.mean(np.concatenate([err[b - 160 : b + 160] for b in points])))

    assert around(range(4800, len(x) - 160, 4800)) < 2 * around(range(2400, len(x) - 160, 4800))


def test_digital_silence_comes_back_as_silence_not_codec_noise():
    """Runs of exact zeros (pauses between takes, leading and trailing silence) are carried in
    the payload header (a few bytes each) and restored as zeros, at any rate and channel count;
    elsewhere the restore is the model's."""
    from aecore.payload import PayloadError

    rng = np.random.default_rng(0)
    sound = lambda n: 0.1 * rng.standard_normal(n)  # noqa: E731
    left = np.concatenate([np.zeros(44100), sound(44100)])
    right = np.concatenate([sound(44100), np.zeros(44100)])
    buf = io.BytesIO()
    sf.write(buf, np.stack([left, right], axis=1).astype(np.float32), 44100, format="WAV", subtype="PCM_16")
    comp = load_bundle(zoo_bundle("audio-small"))
    sample = comp.load(buf.getvalue())
    assert len(sample.info.silence) == 2
    payload = comp.encode([sample])[0].payload
    restored, _, info = comp.decode(payload)
    frames, _ = sf.read(io.BytesIO(restored), dtype="int16")
    assert (frames[: 44100 - 200, 0] == 0).all() and (frames[44100 + 200 :, 1] == 0).all()
    assert (frames[44100 + 200 :, 0] != 0).mean() > 0.9  # the sound itself is not gated
    plain = replace(sample.info, silence=np.zeros((0, 2), np.int64)).pack()
    assert len(sample.info.pack()) - len(plain) <= 8  # two runs, a few bytes each
    header = 2 + len(plain) - 1
    broken = payload[:header] + bytes([5]) + payload[header + 1 :]  # claims 5 runs
    with pytest.raises(PayloadError, match="header unreadable"):
        comp.decode(broken)
