"""Lossless text outside anything tuned here: aec's context-mixing coder (``cm``) against the
classic codecs, file by file, on six kinds of held-out text (issue 24's sets).

Kinds (evaluation only: never trained or tuned on): fortunes, dictionary entries (dict-gcide),
kernel docs (linux-doc), Python docs (python3.11-doc), man pages (the machine's, gunzipped) and
Python's standard-library source. From each kind, ``--files`` files of 2-200 KB, chosen by a
fixed seed; zstd -19's dictionary is trained on ``--files`` *other* files of the same kind (as
a collection's dictionary would be). Sizes are payloads summed per kind; speeds are cm's own,
one process, one thread, on this machine.

    python -m bench.text_cm [--files 6]

Writes docs/bench/text_cm.json; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import random
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, machine

ROOT = Path(__file__).resolve().parents[1]


def _kind_files(kind: str) -> list[Path]:
    from recipes.debs import extract

    cache = ROOT / "build" / "debs"
    roots = {"fortunes": ("fortunes", "usr/share/games/fortunes"), "dictionary": ("dict-gcide", "usr/share/dictd"),
             "kernel docs": ("linux-doc-6.1", "usr/share/doc/linux-doc-6.1"),
             "python docs": ("python3.11-doc", "usr/share/doc/python3.11")}
    if kind in roots:
        package, under = roots[kind]
        return [p for p in (extract(package, cache) / under).rglob("*") if p.is_file() and not p.is_symlink()]
    if kind == "man pages":
        return [p for p in Path("/usr/share/man").rglob("*.gz") if p.is_file() and not p.is_symlink()]
    if kind == "python source":
        return [p for p in Path("/usr/lib/python3.11").glob("*.py") if p.is_file()]
    raise SystemExit(f"unknown kind {kind!r}")


def _read(p: Path) -> list[bytes]:
    """A file's text; one larger than 200 KB (a whole dictionary) in pieces of about 64 KB, cut at lines."""
    data = p.read_bytes()
    data = gzip.decompress(data) if p.suffix in (".gz", ".dz") else data
    if len(data) <= 200_000:
        return [data]
    pieces, at = [], 0
    while at < len(data):
        end = data.find(b"\n", at + 65536)
        end = len(data) if end < 0 else end + 1
        pieces.append(data[at:end])
        at = end
    return pieces


def _sample(kind: str, n: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` files to code and ``n`` others for the dictionary, each 2-200 KB of text."""
    files = []
    for p in sorted(_kind_files(kind)):
        try:
            files.extend(_read(p))
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
    texts = [d for d in files if 2_000 <= len(d) <= 200_000 and b"\x00" not in d[:4096]]
    random.Random(seed).shuffle(texts)
    return texts[:n], texts[n : 2 * n]


def sizes(files: list[bytes], others: list[bytes]) -> dict[str, Any]:
    import brotli
    import pyppmd
    import zstandard

    from aecore.archive.cm import cm_compress, cm_decompress
    from aecore.archive.dictionary import train_dictionary

    out: dict[str, Any] = {"files": len(files), "bytes": sum(map(len, files))}
    d = train_dictionary(others)
    zd = zstandard.ZstdCompressionDict(d) if d else None
    out["zstd -19 + dictionary"] = sum(len(zstandard.ZstdCompressor(level=19, dict_data=zd).compress(f)) for f in files)
    out["brotli -11"] = sum(len(brotli.compress(f, quality=11, lgwin=24)) for f in files)
    out["xz -9e"] = sum(len(lzma.compress(f, preset=9 | lzma.PRESET_EXTREME)) for f in files)

    def ppmd(f: bytes) -> int:
        enc = pyppmd.Ppmd7Encoder(6, 16 << 20)
        return len(enc.encode(f) + enc.flush(endmark=False))

    out["PPMd order 6"] = sum(ppmd(f) for f in files)
    started = time.perf_counter()
    payloads = [cm_compress(f) for f in files]
    encode = time.perf_counter() - started
    started = time.perf_counter()
    assert all(cm_decompress(p) == f for p, f in zip(payloads, files)), "cm did not restore a file"
    decode = time.perf_counter() - started
    out["aec cm"] = sum(map(len, payloads))
    out["cm encode KB/s"] = round(out["bytes"] / encode / 1e3, 1)
    out["cm decode KB/s"] = round(out["bytes"] / decode / 1e3, 1)
    best = min(v for k, v in out.items() if k in ("zstd -19 + dictionary", "brotli -11", "xz -9e", "PPMd order 6"))
    out["cm / best classic"] = round(out["aec cm"] / best, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from aecore.archive.cm import cm_compress

    cm_compress(b"warm up the compiled kernel")
    kinds = ["fortunes", "dictionary", "kernel docs", "python docs", "man pages", "python source"]
    results: dict[str, Any] = {"machine": machine(), "files_per_kind": args.files, "kinds": {}}
    total: dict[str, float] = {}
    for kind in kinds:
        files, others = _sample(kind, args.files, args.seed)
        row = sizes(files, others)
        results["kinds"][kind] = row
        for k, v in row.items():
            if k in ("bytes", "zstd -19 + dictionary", "brotli -11", "xz -9e", "PPMd order 6", "aec cm"):
                total[k] = total.get(k, 0) + v
        print(json.dumps({kind: row}), flush=True)
    best = min(total[k] for k in ("zstd -19 + dictionary", "brotli -11", "xz -9e", "PPMd order 6"))
    results["all"] = {**{k: int(v) for k, v in total.items()}, "cm / best classic": round(total["aec cm"] / best, 4),
                      "bits per byte": {k: round(8 * v / total["bytes"], 3) for k, v in total.items() if k != "bytes"}}
    print(json.dumps(results["all"], indent=1))
    (BENCH_DIR / "text_cm.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
