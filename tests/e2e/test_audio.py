"""Audio end to end: train, compress and decode a collection of clips of mixed rates, channels and formats."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from cluster.decode import restore_path
from jobs.sample_data import make_audio_collection
from tests import tables
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def test_audio_collection_round_trip(ray_local, tmp_path):
    clips = tmp_path / "clips"
    make_audio_collection(clips, 8, seed=2)
    (clips / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    train = tmp_path / "train.yaml"
    train.write_text(f"kind: train\nname: t\nmodality: audio\ninput: {clips}\nregistry: {tmp_path}/reg\n"
                     "model: clips\nepochs: 2\nworkers: 2\npatches_per_item: 4\n")
    run_cli("train", str(train))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: c\nmodality: audio\ninput: {clips}\noutput: {tmp_path}/out\n"
                    f"registry: {tmp_path}/reg\nmodel: clips\nbatch_size: 4\nworkers: 2\nquality_every: 1\n")
    out = run_cli("compress", str(spec))
    assert "completed with 1 errors" in out
    errors = tables.errors(tmp_path / "out")
    assert len(errors) == 1 and errors[0]["uri"].endswith("broken.wav")
    assert {"snr", "kbps"} <= set(tables.totals(tmp_path / "out")["quality"])
    # lossy: Opus competed with the model on every clip, at the model's SNR (aecore.archive.lossy)
    coded = tables.dataset(tmp_path / "out").dataset.to_table(columns=["codec", "quality"])
    for codec, quality in zip(coded.column("codec").to_pylist(), coded.column("quality").to_pylist()):
        q = json.loads(quality)
        assert codec in ("aec-audio", "opus") and q["learned"] == float(codec == "aec-audio")
        assert "opus_bytes" in q or q["snr"] > 30  # Opus tops out near 35 dB at 16 kHz

    decoded = run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "restored"), "--originals", str(clips))
    assert "snr=" in decoded
    for r in tables.dataset(tmp_path / "out").dataset.to_table(columns=["id", "uri", "key", "shape"]).to_pylist():
        restored = tmp_path / "restored" / restore_path(r["key"], False, ".wav")
        frames, rate = sf.read(restored, always_2d=True)
        info = sf.info(r["uri"])
        assert (rate, frames.shape[1], frames.shape[0]) == (info.samplerate, info.channels, info.frames)
        assert list(r["shape"]) == [info.frames, info.channels]

    report = json.loads((tmp_path / "out/_aec/report.json").read_text())
    rd = report["rate_distortion"]
    assert rd["metric"] == "snr" and rd["rate_unit"] == "kbps"
    assert any(codec.startswith("opus") for codec in rd["classic"]) and "snr" in rd["aec"]
    assert (tmp_path / "out/_aec/report.png").stat().st_size > 10_000

    # Lossless: WAVs rebuilt byte for byte from the coded PCM, FLAC and Ogg stored as they are.
    run_cli("compress", str(spec), "--set", f"output={tmp_path}/exact", "--set", "lossless=true")
    run_cli("decode", str(tmp_path / "exact"), "--out", str(tmp_path / "exact-restored"))
    rows = tables.dataset(tmp_path / "exact").dataset.to_table(
        columns=["id", "uri", "key", "bytes", "payload", "codec"]).to_pylist()
    assert len(rows) == 9  # an exact archive: the broken WAV too, as it is
    for r in rows:
        restored = tmp_path / "exact-restored" / r["key"]
        assert restored.read_bytes() == open(r["uri"].removeprefix("file://"), "rb").read(), r["uri"]
        print(f"lossless {r['uri'].rsplit('/', 1)[-1]}: {r['bytes']} -> {len(r['payload'])} bytes by {r['codec']}")
    wavs = [r for r in rows if r["key"].endswith(".wav") and r["key"] != "broken.wav"]
    assert all(r["codec"] in ("flac-wav", "lms2-wav", "aec-audio") and len(r["payload"]) < r["bytes"] for r in wavs)
    exact = tables.totals(tmp_path / "exact")["quality"]
    assert exact["exact"] == 1.0 and 0.0 <= exact["learned"] <= 1.0  # quality_every: 1
