"""Lossless audio by adaptive prediction (aecore.archive.lms): bit-exact on any signal, the WAV's
very bytes back, smaller than FLAC -8 on a harmonic tone, the same payload in any process; the
first version (``lms-wav``) still writes and reads the very payloads it always did."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aecore.archive import CodecContext, candidates, choose, decode_payload, get_file_codec
from aecore.archive.lms import lms_compress, lms_decompress

ROOT = Path(__file__).parents[2]


def _tone(frames: int, channels: int, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    """A decaying harmonic note with vibrato and a little noise, 16-bit, ``[channels, frames]``."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / rate
    phase = 2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 5 * t)
    sig = sum(np.sin(k * phase) / k for k in range(1, 8)) * np.exp(-t)
    out = [sig * 12000 * (0.8 + 0.2 * c) + rng.normal(0, 30, frames) for c in range(channels)]
    return np.clip(np.rint(out), -32768, 32767).astype(np.int64)


def _wav(values: np.ndarray, rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, values.T.astype(np.int16), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize("signal", [
    _tone(8000, 1), _tone(6000, 2), _tone(3000, 8), np.zeros((2, 500), np.int64), _tone(1, 1),
    np.full((1, 700), -32768, np.int64), np.tile([-32768, 32767], (2, 400)).astype(np.int64),
], ids=["mono", "stereo", "8ch", "silence", "one-frame", "floor", "full-swing"])
def test_any_signal_decodes_to_the_same_samples(signal):
    for version in (1, 2):
        coded = lms_compress(signal, version)
        assert coded is not None and np.array_equal(lms_decompress(coded, version=version), signal)


def test_the_first_version_codes_as_it_always_did():
    """The sha256 of ``lms-wav``'s payload of this tone as the first release wrote it: archives
    hold such payloads, and its decoder is the same function run the other way."""
    payload = lms_compress(_tone(8000, 2), version=1)
    assert hashlib.sha256(payload).hexdigest() == "d19ee5ce4aa8e99a30ce85a8be01cecc31269c83108451bfc1c66c95521d1391"
    assert len(lms_compress(_tone(8000, 2))) < len(payload)  # version 2: smaller
    data = _wav(_tone(8000, 2))
    assert "lms-wav" not in {c.codec_id for c in candidates("audio", "max")}  # new archives: lms2-wav
    old = get_file_codec("lms-wav").encode(data, CodecContext())
    assert decode_payload("lms-wav", old, CodecContext(), len(data)) == data


def test_white_noise_at_full_scale_is_left_to_other_codecs():
    noise = np.random.default_rng(1).integers(-32768, 32768, (1, 4000))
    assert lms_compress(noise) is None  # past 16 bits a sample it stops: storing wins


def test_a_wav_comes_back_byte_for_byte_and_smaller_than_flac():
    ctx = CodecContext()
    data = _wav(_tone(32000, 2))
    lms = get_file_codec("lms2-wav").encode(data, ctx)
    flac = get_file_codec("flac-wav").encode(data, ctx)
    assert lms is not None and flac is not None
    assert decode_payload("lms2-wav", lms, ctx, len(data)) == data
    assert len(lms) < len(flac) < len(data), (len(lms), len(flac))
    assert choose(data, "audio", ctx).codec == "lms2-wav"
    assert "lms2-wav" in {c.codec_id for c in candidates("audio", "default")}
    assert "lms2-wav" not in {c.codec_id for c in candidates("audio", "fast")}  # fast: FLAC alone


def test_a_corrupt_payload_is_refused_in_one_line():
    ctx = CodecContext()
    data = _wav(_tone(4000, 1))
    payload = get_file_codec("lms2-wav").encode(data, ctx)
    with pytest.raises(ValueError, match="the row is corrupt"):
        decode_payload("lms2-wav", payload, ctx, 100)  # claims more samples than the row's file holds


_ENCODE = """
import sys
from aecore.archive import CodecContext, get_file_codec
sys.stdout.buffer.write(get_file_codec("lms2-wav").encode(open(sys.argv[1], "rb").read(), CodecContext()))
"""


def test_the_payload_is_the_same_in_another_process_and_thread_count(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(_wav(_tone(5000, 2)))
    payloads = []
    for threads in ("1", "2"):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": threads,
               "OMP_NUM_THREADS": threads}
        payloads.append(subprocess.run([sys.executable, "-c", _ENCODE, str(path)], env=env, capture_output=True,
                                       check=True, timeout=300).stdout)
    assert payloads[0] == payloads[1] == get_file_codec("lms2-wav").encode(path.read_bytes(), CodecContext())
    assert decode_payload("lms2-wav", payloads[0], CodecContext(), path.stat().st_size) == path.read_bytes()
