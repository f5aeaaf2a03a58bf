"""Lossless audio by adaptive prediction (``lms-wav``) against FLAC -8, file by file, on held-out
recordings nobody trained or tuned on.

The clips are the held-out split of ``recipes.audio_data`` (speech: klettres-data; music and
recorded sound: the packages it names; 16 kHz mono 16-bit WAV, music in pieces of at most 60 s).
The cascade's settings were chosen on the training split. Per set: the WAV bytes, FLAC -8's payload
(``flac-wav``: libsndfile, the WAV recipe included), ``lms-wav``'s, the per-file best of the two (what
an archive stores), the share of files and bytes ``lms-wav`` wins, and encode/decode speed as
multiples of real time on one core. Every payload is decoded and compared with its file.

    python -m recipes.audio_data          # once: build/zoo-data/audio (~2 min)
    python -m bench.lms_audio             # ~1 min on 2 cores
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import soundfile as sf

from aecore.archive import CodecContext, get_file_codec
from bench.common import BENCH_DIR, machine

DATA = Path("build/zoo-data/audio/heldout")


def bench_set(files: list[Path]) -> dict:
    ctx = CodecContext()
    flac, lms = get_file_codec("flac-wav"), get_file_codec("lms2-wav")
    totals = {"files": len(files), "seconds": 0.0, "wav_bytes": 0, "flac_bytes": 0, "lms_bytes": 0, "best_bytes": 0}
    won = won_bytes = 0
    encode_s = decode_s = 0.0
    for path in files:
        data = path.read_bytes()
        info = sf.info(path)
        totals["seconds"] += info.frames / info.samplerate
        f = flac.encode(data, ctx)
        started = time.perf_counter()
        m = lms.encode(data, ctx)
        encode_s += time.perf_counter() - started
        started = time.perf_counter()
        assert m is not None and lms.decode(m, ctx, len(data)) == data, path
        decode_s += time.perf_counter() - started
        assert flac.decode(f, ctx, len(data)) == data, path
        totals["wav_bytes"] += len(data)
        totals["flac_bytes"] += len(f)
        totals["lms_bytes"] += len(m)
        totals["best_bytes"] += min(len(f), len(m))
        if len(m) < len(f):
            won += 1
            won_bytes += len(data)
    totals.update(
        lms_vs_flac=round(totals["lms_bytes"] / totals["flac_bytes"], 4),
        best_vs_flac=round(totals["best_bytes"] / totals["flac_bytes"], 4),
        flac_bits_per_sample=round(8 * totals["flac_bytes"] / (totals["seconds"] * 16_000), 3),
        lms_bits_per_sample=round(8 * totals["lms_bytes"] / (totals["seconds"] * 16_000), 3),
        lms_won_files=round(won / len(files), 3), lms_won_bytes=round(won_bytes / max(totals["wav_bytes"], 1), 3),
        encode_x_realtime=round(totals["seconds"] / encode_s, 1), decode_x_realtime=round(totals["seconds"] / decode_s, 1))
    return totals


def main() -> None:
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing; run: python -m recipes.audio_data")
    get_file_codec("lms2-wav").encode(b"", CodecContext())  # compile outside the timings (a WAV-less call)
    import numpy as np

    from aecore.archive.lms import lms_compress

    lms_compress(np.zeros((1, 16), np.int64))
    out = {"machine": machine(), "sets": {}}
    for name in sorted(p.name for p in DATA.iterdir()):
        files = sorted((DATA / name).glob("*.wav"))
        out["sets"][name] = bench_set(files)
        print(name, json.dumps(out["sets"][name]))
    (BENCH_DIR / "lms_audio.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
