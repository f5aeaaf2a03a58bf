"""Lossless audio by adaptive prediction (``lms2-wav``) against FLAC -8, file by file, on held-out
recordings nobody trained or tuned on.

The clips are the held-out split of ``recipes.audio_data`` (speech: klettres-data; music and
recorded sound: the packages it names; 16 kHz mono 16-bit WAV, music in pieces of at most 60 s),
and the same held-out music at its own rate and channel count (``--native``: 44.1-48 kHz stereo,
22-44.1 kHz mono; pieces of 30 s). Settings were chosen on the training split. Per set: the WAV
bytes, FLAC -8's payload (``flac-wav``: libsndfile, the WAV recipe included), ``lms2-wav``'s and
the first version's (``lms-wav``), the per-file best of FLAC and ``lms2-wav`` (what an archive
stores), the share of files and bytes ``lms2-wav`` wins, optionally WavPack ``-hhx6``, and
encode/decode speed as multiples of real time on this machine's 2 cores (a mono file uses one; a
stereo pair's two streams are coded side by side). Every payload is decoded and compared.

    python -m recipes.audio_data --native # once: build/zoo-data/audio (~4 min)
    python -m bench.lms_audio [--wavpack PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import soundfile as sf

from aecore.archive import CodecContext, get_file_codec
from bench.common import BENCH_DIR, machine

DATA = Path("build/zoo-data/audio/heldout")
NATIVE = Path("build/zoo-data/audio/native/heldout")  # recipes.audio_data --native


def _wavpack(data: bytes, binary: str) -> int:
    """Bytes of WavPack's strongest mode (``-hhx6``) for one WAV (a binary from Debian's wavpack)."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as t:
        wav, wv = Path(t) / "a.wav", Path(t) / "a.wv"
        wav.write_bytes(data)
        env = {**os.environ, "LD_LIBRARY_PATH": str(Path(binary).parents[1] / "lib" / "x86_64-linux-gnu")}
        subprocess.run([binary, "-q", "-hhx6", str(wav), "-o", str(wv)], check=True, env=env, capture_output=True)
        return wv.stat().st_size


def bench_set(files: list[Path], wavpack: str | None = None) -> dict:
    ctx = CodecContext()
    flac, lms, first = get_file_codec("flac-wav"), get_file_codec("lms2-wav"), get_file_codec("lms-wav")
    totals = {"files": len(files), "seconds": 0.0, "samples": 0, "wav_bytes": 0, "flac_bytes": 0, "lms_bytes": 0,
              "lms_v1_bytes": 0, "best_bytes": 0}
    if wavpack:
        totals["wavpack_bytes"] = 0
    won = won_bytes = 0
    encode_s = decode_s = 0.0
    for path in files:
        data = path.read_bytes()
        info = sf.info(path)
        totals["seconds"] += info.frames / info.samplerate
        totals["samples"] += info.frames * info.channels
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
        totals["lms_v1_bytes"] += len(first.encode(data, ctx) or data)
        totals["best_bytes"] += min(len(f), len(m))
        if wavpack:
            totals["wavpack_bytes"] += _wavpack(data, wavpack)
        if len(m) < len(f):
            won += 1
            won_bytes += len(data)
    per_sample = 8 / totals["samples"]
    totals.update(
        lms_vs_flac=round(totals["lms_bytes"] / totals["flac_bytes"], 4),
        lms_v1_vs_flac=round(totals["lms_v1_bytes"] / totals["flac_bytes"], 4),
        best_vs_flac=round(totals["best_bytes"] / totals["flac_bytes"], 4),
        flac_bits_per_sample=round(per_sample * totals["flac_bytes"], 3),
        lms_bits_per_sample=round(per_sample * totals["lms_bytes"], 3),
        lms_won_files=round(won / len(files), 3), lms_won_bytes=round(won_bytes / max(totals["wav_bytes"], 1), 3),
        encode_x_realtime=round(totals["seconds"] / encode_s, 1), decode_x_realtime=round(totals["seconds"] / decode_s, 1))
    if wavpack:
        totals["wavpack_vs_flac"] = round(totals["wavpack_bytes"] / totals["flac_bytes"], 4)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wavpack", help="a wavpack binary (apt-get download wavpack libwavpack1; dpkg -x): also -hhx6")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing; run: python -m recipes.audio_data --native")
    get_file_codec("lms2-wav").encode(b"", CodecContext())  # compile outside the timings (a WAV-less call)
    import numpy as np

    from aecore.archive.lms import lms_compress

    lms_compress(np.zeros((1, 16), np.int64), 1)
    lms_compress(np.zeros((1, 16), np.int64))
    out = {"machine": machine(), "sets": {}}
    sets = {f"{name} (16 kHz mono)": sorted((DATA / name).glob("*.wav")) for name in sorted(p.name for p in DATA.iterdir())}
    native = sorted(NATIVE.rglob("*.wav")) if NATIVE.exists() else []
    for label, pick in (("music (44.1-48 kHz stereo)", lambda i: i.channels == 2),
                        ("music (22-44.1 kHz mono)", lambda i: i.channels == 1)):
        sets[label] = [p for p in native if pick(sf.info(p))]
    for name, files in sets.items():
        if not files:
            continue
        out["sets"][name] = bench_set(files, args.wavpack)
        print(name, json.dumps(out["sets"][name]), flush=True)
    (BENCH_DIR / "lms_audio.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
