"""Lossless text against the classic codecs, file by file (issue 24): aec's context-mixing coder
alone (``cm2``), after the primer ``aec train`` fits on the other half of each kind (``aec-cm``),
and aec's per-file choice among all its candidates, on text nobody here trained or tuned on.

Kinds (evaluation only: never trained or tuned on by anything shipped): fortunes, dictionary
entries (dict-gcide), kernel docs (linux-doc), Python docs (python3.11-doc), man pages (the
machine's, gunzipped), Python's standard-library source, JSON (CMake's MSBuild flag tables and
the ISO code lists the machine ships) and logs (Ray's, of this benchmark's own training runs:
run ``logs`` last); plus the held-out split of the text
zoo's own data (``recipes.text_data``), coded with the zoo's ``text-cm`` as shipped. Each kind's
files (0.5-200 KB; a larger file in pieces of about 64 KB cut at lines) are shuffled by a fixed
seed and halved: ``aec train`` (the real command, a user's way: ``init`` the zoo's text model,
``--steps`` steps) runs on up to ``--train-files`` of the first half, and ``--files`` of the second
half are coded. zstd's dictionary is trained on the same training files. Speeds are aec's on this
machine: one thread, and decode on two threads at once (two files side by side).

    python -m bench.text_cm [--files 20] [--train-files 600] [--steps 30] [--kinds ...] [--merge]

Writes docs/bench/text_cm.json; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, machine

ROOT = Path(__file__).resolve().parents[1]
KINDS = ["fortunes", "dictionary", "kernel docs", "python docs", "man pages", "python source", "JSON", "logs"]
OWN = "own split (zoo text-cm)"
#: what aec must beat: the smallest of these, summed over a kind's files
CLASSIC = ("zstd -19 + dictionary", "brotli -11", "PPMd order 6", "PPMd order 8", "xz -9e")


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
    if kind == "JSON":  # CMake's MSBuild flag tables and the ISO code lists, as the machine ships them
        return [*Path("/usr/share").glob("cmake-*/Templates/MSBuild/FlagTables/*.json"),
                *Path("/usr/share/iso-codes/json").glob("*.json")]
    if kind == "logs":  # Ray's logs of the training runs this benchmark started (and any before them)
        return [p for p in Path("/tmp/ray").glob("session_*/logs/*") if p.is_file() and p.suffix in (".log", ".out", ".err")]
    if kind == OWN:
        return [p for p in (ROOT / "build" / "zoo-data" / "text" / "heldout").rglob("*") if p.is_file()]
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


def split(kind: str, files: int, train_files: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """``(training texts, texts to code)``: the kind's texts halved by a fixed seed."""
    texts = []
    for p in sorted(_kind_files(kind)):
        try:
            texts.extend(_read(p))
        except (OSError, EOFError, gzip.BadGzipFile):
            continue
    texts = [d for d in texts if 500 <= len(d) <= 200_000 and b"\x00" not in d[:4096]]
    random.Random(seed).shuffle(texts)
    half = len(texts) // 2
    return texts[:half][:train_files], texts[half:][:files]


def aec_train(kind: str, texts: list[bytes], work: Path, steps: int) -> tuple[bytes, dict[str, Any]]:
    """``aec train`` on ``texts`` (written as files of a folder), as a user would; the registered bundle."""
    from jobs.models import load_model
    from jobs.registry import ModelRegistry

    slug = kind.replace(" ", "-")
    folder = work / slug / "train"
    shutil.rmtree(work / slug, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, t in enumerate(texts):
        (folder / f"{i:05d}.txt").write_bytes(t)
    spec = work / slug / "train.yaml"
    spec.write_text(f"kind: train\nname: fit-{slug}\nmodality: text\ninput: {folder}\nregistry: {work / slug}/registry\n"
                    f"model: {slug}\nsteps: {steps}\nworkers: 2\ngpus: 0\nbatch_size: 16\npatch_size: 1024\n"
                    "patches_per_item: 8\n")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.cli", "train", str(spec)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    registry = ModelRegistry(str(work / slug / "registry"))
    mv, bundle = load_model(f"{slug}@{registry.versions(slug)[-1]}", registry)
    return bundle, {"train_files": len(texts), "train_bytes": sum(map(len, texts)), "train_seconds": round(seconds, 1),
                    "kept": mv.info.get("kept")}


def classic_sizes(files: list[bytes], train: list[bytes]) -> dict[str, int]:
    import brotli
    import pyppmd
    import zstandard

    from aecore.archive.dictionary import train_dictionary

    def ppmd(f: bytes, order: int, mem: int) -> int:
        enc = pyppmd.Ppmd7Encoder(order, mem)
        return len(enc.encode(f) + enc.flush(endmark=False))

    d = train_dictionary([t[:65536] for t in train])
    zd = zstandard.ZstdCompressionDict(d) if d else None
    out = {
        "gzip -9": sum(len(gzip.compress(f, 9)) for f in files),
        "xz -9e": sum(len(lzma.compress(f, preset=9 | lzma.PRESET_EXTREME)) for f in files),
        "zstd -19": sum(len(zstandard.ZstdCompressor(level=19).compress(f)) for f in files),
        "zstd -19 + dictionary": sum(len(zstandard.ZstdCompressor(level=19, dict_data=zd).compress(f)) for f in files),
        "brotli -11": sum(len(brotli.compress(f, quality=11, lgwin=24)) for f in files),
        "PPMd order 6": sum(ppmd(f, 6, 16 << 20) for f in files),
        "PPMd order 8": sum(ppmd(f, 8, 64 << 20) for f in files),
    }
    try:
        import zpaq

        out["zpaq -m5"] = sum(len(zpaq.compress(f, level=5, threads=1)) for f in files)
    except ImportError:  # the bench extra installs it; the figures say when it was absent
        pass
    return out


def aec_sizes(files: list[bytes], bundle: bytes, causal: int) -> dict[str, Any]:
    """cm2 alone, aec-cm after the model's primer (with speeds), aec's per-file choice (default
    effort, the model's codecs competing), and the causal byte model on the first ``causal`` files."""
    from aecore import load_bundle
    from aecore.archive import CodecContext, choose, get_file_codec

    compressor = load_bundle(bundle, lossless=True)
    ctx = CodecContext(compressors={"text": compressor})
    total = sum(map(len, files))
    cm2, primed = get_file_codec("cm2"), get_file_codec("aec-cm")
    started = time.perf_counter()
    primed.encode(b"warm up: prime and compile", ctx)
    out: dict[str, Any] = {"priming seconds (first state, with compiling)": round(time.perf_counter() - started, 2)}
    out["cm2 (alone)"] = sum(len(cm2.encode(f, ctx)) for f in files)
    started = time.perf_counter()
    payloads = [primed.encode(f, ctx) for f in files]
    encode = time.perf_counter() - started
    started = time.perf_counter()
    assert all(primed.decode(p, ctx, len(f)) == f for p, f in zip(payloads, files)), "aec-cm did not restore a file"
    decode = time.perf_counter() - started
    with ThreadPoolExecutor(2) as pool:  # two files side by side (the coder releases the GIL), after a
        # first pass that primes each thread's state (once per process: reported apart, below)
        started = time.perf_counter()
        list(pool.map(lambda pf: primed.decode(pf[0], ctx, len(pf[1])), zip(payloads[:2], files[:2])))
        out["priming seconds (second state)"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        again = list(pool.map(lambda pf: primed.decode(pf[0], ctx, len(pf[1])), zip(payloads, files)))
        decode2 = time.perf_counter() - started
    assert again == files
    out["aec-cm (primed)"] = sum(map(len, payloads))
    out["aec-cm encode KB/s (1 thread)"] = round(total / encode / 1e3, 1)
    out["aec-cm decode KB/s (1 thread)"] = round(total / decode / 1e3, 1)
    out["aec-cm decode KB/s (2 threads)"] = round(total / decode2 / 1e3, 1)
    choices = [choose(f, "text", ctx) for f in files]
    out["aec (per-file best)"] = sum(len(c.payload) for c in choices)
    out["aec winners"] = {c: sum(ch.codec == c for ch in choices) for c in sorted({ch.codec for ch in choices})}
    out["learned share of bytes"] = round(sum(len(f) for f, c in zip(files, choices) if c.learned) / total, 4)
    if causal:
        learned = get_file_codec("aec-text")
        sample = files[:causal]
        started = time.perf_counter()
        sizes = [len(learned.encode(f, CodecContext(compressors={"text": compressor}, effort="max")) or f) for f in sample]
        out["causal model (first files)"] = {"files": len(sample), "bytes": sum(map(len, sample)),
                                             "aec-text": sum(sizes),
                                             "aec-cm": sum(len(p) for p in payloads[:causal]),
                                             "seconds (encode + check)": round(time.perf_counter() - started, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--train-files", type=int, default=600)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--causal", type=int, default=2, help="files per kind also coded by the causal byte model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", nargs="*", default=[OWN, *KINDS])
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-text")
    parser.add_argument("--merge", action="store_true", help="add these kinds to the figures already written")
    args = parser.parse_args()
    from aecore.zoo import zoo_bundle

    out = BENCH_DIR / "text_cm.json"
    results: dict[str, Any] = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "kinds": {}}
    if args.merge and out.exists():
        results["kinds"] = json.loads(out.read_text())["kinds"]
    for kind in args.kinds:
        train, files = split(kind, args.files, args.train_files, args.seed)
        if kind == OWN:
            bundle, fit = zoo_bundle("text-cm"), {"model": "zoo:text-cm as shipped"}
        else:
            bundle, fit = aec_train(kind, train, args.work, args.steps)
        row: dict[str, Any] = {"files": len(files), "bytes": sum(map(len, files)), **fit}
        row.update(classic_sizes(files, train))
        row.update(aec_sizes(files, bundle, args.causal))
        best = min(row[k] for k in CLASSIC)
        for name in ("aec (per-file best)", "aec-cm (primed)", "cm2 (alone)"):
            row[f"{name.split(' ')[0]} / best classic"] = round(row[name] / best, 4)
        results["kinds"][kind] = row
        print(json.dumps({kind: row}), flush=True)
    results["all"] = totals(results["kinds"])
    print(json.dumps(results["all"], indent=1))
    out.write_text(json.dumps(results, indent=1))


def totals(kinds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every kind's bytes summed per codec, and aec's ratios to the best classic codec over them."""
    total: dict[str, int] = {}
    for row in kinds.values():
        for k, v in row.items():
            if isinstance(v, int) and k not in ("files", "train_files", "train_bytes"):
                total[k] = total.get(k, 0) + v
    best = min(total[k] for k in CLASSIC)
    return {**total, **{f"{name.split(' ')[0]} / best classic": round(total[name] / best, 4)
                        for name in ("aec (per-file best)", "aec-cm (primed)", "cm2 (alone)")},
            "bits per byte": {k: round(8 * v / total["bytes"], 3) for k, v in total.items() if k != "bytes"}}


if __name__ == "__main__":
    main()
