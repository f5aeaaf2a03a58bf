"""The job report's previews: the original beside aec's restore and the classic codec's decode
closest to aec's rate (Opus for audio, as spectrograms)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from aecore import load_bundle
from aecore.zoo import zoo_bundle
from cluster.report import _figure, _rd
from cluster.storage import Location


def test_an_audio_preview_shows_original_aec_and_opus_at_about_the_same_rate(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(3 * 16000) / 16000
    x = (0.2 * np.sin(2 * np.pi * 220 * t * (1 + 0.2 * t)) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(tmp_path / "clip.wav", x, 16000, subtype="PCM_16")
    comp = load_bundle(zoo_bundle("audio-small"), rate_point=2.0)
    sample = comp.load((tmp_path / "clip.wav").read_bytes())
    payload = comp.encode([sample], [False])[0].payload
    loc = Location.of(str(tmp_path))
    uri = loc.uri(loc.path + "/clip.wav")
    rd = _rd(comp, loc, {uri: loc.path + "/clip.wav"}, [{"uri": uri, "payload": payload}])

    (preview,) = rd["previews"]
    titles = [title for title, _ in preview["panels"]]
    assert preview["kind"] == "spectrogram" and titles[:2] == ["original", "aec"] and titles[2].startswith("opus")
    aec_kbps = rd["aec"]["kbps"]
    nearest = min(rd["classic"].values(), key=lambda p: abs(p["kbps"] - aec_kbps))
    assert f"{nearest['kbps']:.3g} kbps" in titles[2]  # the Opus setting closest to aec's rate
    shapes = {data.shape for _, data in preview["panels"]}
    assert len(shapes) == 1  # one time-frequency grid for all three
    report = {"dataset": "d", "model": "zoo:audio-small", "throughput": {"rows_per_second": 1.0, "timeline": []}}
    png = _figure(report, rd)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
