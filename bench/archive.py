"""Whole folders archived exactly: aec (each file by the best codec) against solid archivers.

Two real folders, each a package's own tree as it ships (neither used to train a shipped model):

- ``scipy``: the installed scipy package (Python sources, compiled extensions, test data: WAV,
  MATLAB, text);
- ``hedgewars``: Debian's ``hedgewars-data`` (PNG artwork, Ogg sounds, Lua scripts, configs,
  translations), fetched with ``apt-get download`` + ``dpkg -x`` (recipes.debs).

For each: ``aec compress`` (``modality: auto``, no learned model, effort default) then
``aec decode``, a walk comparing bytes, modes, mtimes and links; bytes on disk of the whole table
(parts, log, dictionary); encode and decode MB/s. In the same run, on the same cores:
``tar | zstd -19 --long=27``, ``tar | xz -9e``, 7-Zip ``-mx=9`` (``7zz``, Debian's 7zip), and the
per-file best classic codec alone (each file by the smallest of aec's classic candidates, no
dictionary: the encoder records it per row; payloads summed, no container). Per codec: the share of files and bytes it won.

    python -m bench.archive [--folders scipy hedgewars] [--effort default] [--models image=zoo:image-small ...]

Writes docs/bench/archive.json; the figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, WORK, machine

ROOT = Path(__file__).resolve().parents[1]


def folder(name: str) -> Path:
    if Path(name).is_dir():  # any other folder, for a quick look
        return Path(name).resolve()
    if name == "scipy":
        import scipy

        return Path(scipy.__file__).parent
    if name == "hedgewars":
        from recipes.debs import extract

        return extract("hedgewars-data", ROOT / "build" / "debs")
    raise SystemExit(f"unknown folder {name!r}")


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _timed(cmd: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], check=True)
    return time.perf_counter() - started


def solid(src: Path, work: Path) -> dict[str, Any]:
    """The solid archivers a user would reach for, on the same tree."""
    out: dict[str, Any] = {}
    parent, name = src.parent, src.name
    for label, ext, cmd in [
        ("tar | zstd -19 --long=27", "tar.zst", "tar -C {p} -cf - {n} | zstd -q -19 --long=27 -T2 -o {o}"),
        ("tar | xz -9e", "tar.xz", "tar -C {p} -cf - {n} | xz -9e -T2 > {o}"),
        ("7-Zip -mx=9", "7z", "cd {p} && 7zz a -bd -mx=9 -mmt=2 {o} {n} > /dev/null"),
    ]:
        target = work / f"{name}.{ext}"
        target.unlink(missing_ok=True)
        seconds = _timed(cmd.format(p=parent, n=name, o=target))
        out[label] = {"bytes": target.stat().st_size, "encode_seconds": round(seconds, 1)}
        target.unlink()
    return out


def _exact_rows_identical(ds: Any, src: Path, restored: Path) -> bool:
    """A lossy archive: every file its table keeps exactly comes back identical (and every lossy
    one is restored somewhere: counted by the caller from the table)."""
    from cluster.decode import row_is_exact

    rows = ds.dataset.to_table(columns=["key", "codec", "modality", "entry"]).to_pylist()
    return all((restored / r["key"]).read_bytes() == (src / r["key"]).read_bytes()
               for r in rows if r["entry"] == "file" and row_is_exact(r, False))


def per_file_best_classic(ds: Any) -> dict[str, Any]:
    """Each file by the smallest classic candidate on its own (no collection dictionary), summed:
    the encoder records it per row (``classic_alone_bytes``, every row with ``quality_every: 1``)."""
    import pyarrow.compute as pc

    measured = ds.dataset.to_table(columns=["quality"], filter=pc.field("quality").is_valid())
    alone = [json.loads(q).get("classic_alone_bytes") for q in measured.column("quality").to_pylist()]
    alone = [n for n in alone if n is not None]  # a lossy row's record holds its lossy figures instead
    return {"bytes": int(sum(alone)), "rows": len(alone)}


def aec_archive(src: Path, work: Path, effort: str, models: dict[str, str] | None = None,
                lossless: bool = True) -> dict[str, Any]:
    from cluster.dataset import open_dataset
    from cluster.storage import Location, describe_tree

    out, restored = work / "table", work / "restored"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(restored, ignore_errors=True)
    spec = work / "archive.yaml"
    spec.write_text(f"kind: compress\nname: bench-archive\ninput: {src}\noutput: {out}\nregistry: {work}/registry\n"
                    f"effort: {effort}\nworkers: 2\nbatch_size: 16\nquality_every: 1\n"
                    + ("" if lossless else "lossless: false\n")
                    + (f"models: {json.dumps(models)}\n" if models else ""))
    aec = [sys.executable, "-m", "jobs.cli"]
    started = time.perf_counter()
    subprocess.run([*aec, "compress", str(spec)], check=True, stdout=subprocess.DEVNULL)
    encode = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run([*aec, "decode", str(out), "--out", str(restored)], check=True, stdout=subprocess.DEVNULL)
    decode = time.perf_counter() - started
    ds = open_dataset(Location.of(str(out)))
    identical = describe_tree(src) == describe_tree(restored) if lossless else _exact_rows_identical(ds, src, restored)
    totals = ds.totals()
    rows = ds.breakdown()
    files = sum(r["files"] for r in rows if r["codec"] not in ("dir", "symlink")) or 1
    size = sum(r["bytes"] for r in rows) or 1
    winners = {f"{r['modality']}/{r['codec']}": {"files": r["files"], "share_of_files": round(r["files"] / files, 4),
                                                 "bytes": r["bytes"], "share_of_bytes": round(r["bytes"] / size, 4),
                                                 "payload_bytes": r["payload_bytes"]} for r in rows}
    learned = sum(r["bytes"] for r in rows if r["codec"].startswith("aec-"))
    shutil.rmtree(restored, ignore_errors=True)
    classic = per_file_best_classic(ds)
    return {"per-file best classic": classic,
            "bytes": totals["stored_bytes"], "payload_bytes": totals["payload_bytes"], "rows": totals["rows"],
            "identical": identical, "encode_seconds": round(encode, 1), "decode_seconds": round(decode, 1),
            "ratio_on_disk": totals["ratio"], "learned_share_of_bytes": round(learned / size, 4), "codecs": winners}


#: what ``--fit`` trains per modality: the shipped train specs' settings, each a 200-step fine-tune of
#: the modality's zoo model (the default starting point) on every file of that modality in the folder
FIT = {
    "image": "batch_size: 8\npatch_size: 64\npatches_per_item: 2\nregularizer: plain\n",
    "text": "batch_size: 16\npatch_size: 1024\npatches_per_item: 8\n",
    "audio": "batch_size: 32\npatches_per_item: 8\nregularizer: plain\n",
}


def fit(src: Path, work: Path, modality: str, name: str) -> dict[str, Any]:
    """``aec train`` on every ``modality`` file of the folder, as a user would (the registry keeps
    the fine-tuned weights or the zoo model's, whichever codes the held-out tenth better)."""
    from jobs.registry import ModelRegistry

    spec = work / f"train-{modality}.yaml"
    spec.write_text(f"kind: train\nname: fit-{modality}\nmodality: {modality}\ninput: {src}\n"
                    f"registry: {work}/registry\nmodel: {name}\nsteps: 200\nworkers: 2\ngpus: 0\n" + FIT[modality])
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jobs.cli", "train", str(spec)], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    registry = ModelRegistry(str(work / "registry"))
    mv = registry.resolve(f"{name}@{registry.versions(name)[-1]}")
    meta = mv.info
    return {"model": mv.ref, "train_seconds": round(seconds, 1), "files": meta["lineage"]["files"],
            "input_bytes": meta["lineage"]["input_bytes"], "heldout": meta.get("heldout"), "kept": meta.get("kept")}


def learned_sample(src: Path, work: Path, modalities: list[str], count: int, seed: int = 0) -> Path:
    """``count`` files of each modality the learned models take (RGB images, WAV sounds, text),
    drawn by a fixed seed and copied with their relative paths: the folder the learned codecs
    compete on (a whole folder's text through the learned text model runs at a few KB/s)."""
    import random

    from aecore import get_modality

    out = work / f"sample-{src.name}"
    shutil.rmtree(out, ignore_errors=True)
    for modality in modalities:
        takes = get_modality(modality).extensions
        files = sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink() and p.suffix.lower() in takes
                       and 256 <= p.stat().st_size <= 1 << 20 and _learned_takes(modality, p))
        for p in random.Random(seed).sample(files, min(count, len(files))):
            target = out / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
    return out


def _learned_takes(modality: str, path: Path) -> bool:
    if modality == "image":  # the image model codes RGB pixels: palette and RGBA sprites go to the classic codecs
        from PIL import Image

        with Image.open(path) as im:
            return im.mode == "RGB"
    if modality == "audio":
        return path.suffix.lower() == ".wav"
    return True


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/benchmarks.md from a run's JSON (``--markdown``)."""
    out = []
    for name, entry in results["folders"].items():
        aec = entry["aec"]
        out.append(f"{name}: {entry['bytes']:,} bytes in {entry['files']:,} files ({aec['rows']:,} rows with folders "
                   f"and links); restore identical: {aec['identical']}\n")
        out.append("| | bytes on disk | ratio | vs aec | encode MB/s | decode MB/s |\n| --- | --- | --- | --- | --- | --- |")
        lines = [("aec (table on disk)", aec), ("aec payloads alone", {"bytes": aec["payload_bytes"]})]
        lines += [(k, v) for k, v in entry.items() if isinstance(v, dict) and "bytes" in v and k != "aec"]
        for label, v in lines:
            ratio = entry["bytes"] / v["bytes"]
            out.append(f"| {label.replace('|', chr(92) + '|')} | {v['bytes']:,} | {ratio:.3f} | "
                       f"{100 * (v['bytes'] / aec['bytes'] - 1):+.1f} % | {v.get('encode_mb_s', '-')} | "
                       f"{v.get('decode_mb_s', '-')} |")
        out.append(f"\nWhere each file went ({name}, by modality/codec):\n")
        out.append("| modality/codec | files | share of files | bytes in | share of bytes | payload bytes |\n"
                   "| --- | --- | --- | --- | --- | --- |")
        for codec, c in sorted(aec["codecs"].items(), key=lambda kv: -kv[1]["bytes"]):
            out.append(f"| {codec} | {c['files']} | {100 * c['share_of_files']:.1f}% | {c['bytes']:,} | "
                       f"{100 * c['share_of_bytes']:.1f}% | {c['payload_bytes']:,} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", default=["scipy", "hedgewars"])
    parser.add_argument("--effort", default="default")
    parser.add_argument("--no-solid", action="store_true", help="skip the solid archivers")
    parser.add_argument("--markdown", action="store_true", help="print the tables of the last run and stop")
    parser.add_argument("--models", nargs="*", default=[], metavar="MODALITY=REF",
                        help="learned models that join the codecs (e.g. image=zoo:image-small text=zoo:text-fast)")
    parser.add_argument("--out", default="archive.json", help="the JSON under docs/bench/")
    parser.add_argument("--fit", nargs="*", default=[], metavar="MODALITY",
                        help="aec train a model of each modality on the folder, then archive a sample of the files "
                             "those models take twice: with the zoo models and with the fitted ones (no solid archivers)")
    parser.add_argument("--sample", type=int, default=16, help="files per modality in the --fit sample")
    parser.add_argument("--keep-models", action="store_true",
                        help="with --fit: archive again with the models the last run fitted (no training)")
    parser.add_argument("--lossy", action="store_true",
                        help="a held-out mixed folder (wallpapers, sounds, fortunes) archived exactly and lossy")
    args = parser.parse_args()
    models = dict(m.split("=", 1) for m in args.models) or None
    if args.markdown:
        print(markdown(json.loads((BENCH_DIR / args.out).read_text())))
        return
    if args.fit:
        fitted_run(args)
        return
    if args.lossy:
        lossy_run(args)
        return
    results: dict[str, Any] = {"machine": machine(), "effort": args.effort, "models": models, "folders": {}}
    path = BENCH_DIR / args.out
    if path.exists():
        results["folders"] = json.loads(path.read_text()).get("folders", {})
    for name in args.folders:
        src = folder(name)
        work = WORK / f"archive-{name}"
        work.mkdir(parents=True, exist_ok=True)
        size = _size(src)
        entry: dict[str, Any] = {"path": str(src), "bytes": size,
                                 "files": sum(1 for p in src.rglob("*") if p.is_file() and not p.is_symlink())}
        entry["aec"] = aec_archive(src, work, args.effort, models)
        entry["per-file best classic (payloads alone)"] = entry["aec"].pop("per-file best classic")
        if not args.no_solid:
            entry.update(solid(src, work))
        for v in entry.values():
            if isinstance(v, dict) and "bytes" in v:
                v["ratio"] = round(size / v["bytes"], 4)
                if v.get("encode_seconds"):
                    v["encode_mb_s"] = round(size / 1e6 / v["encode_seconds"], 3)
        if entry["aec"].get("decode_seconds"):
            entry["aec"]["decode_mb_s"] = round(size / 1e6 / entry["aec"]["decode_seconds"], 3)
        results["folders"][name if not Path(name).is_dir() else src.name] = entry
        print(json.dumps({name: {k: (v["bytes"] if isinstance(v, dict) and "bytes" in v else v)
                                 for k, v in entry.items()}}, indent=1), flush=True)
        path.write_text(json.dumps(results, indent=1))


def lossy_folder(work: Path, photos: int = 8, seed: int = 0) -> Path:
    """A held-out mixed folder as a user's might be: wallpapers (``mate-backgrounds``: JPEG and
    PNG photos), the sounds of ``alsa-utils`` (WAV) and the fortune files (``fortunes``: text),
    all packages kept for evaluation, never trained on."""
    import random

    from recipes.debs import extract

    cache = ROOT / "build" / "debs"
    out = work / "mixed"
    shutil.rmtree(out, ignore_errors=True)
    from PIL import Image

    def fits(p: Path) -> bool:  # up to 4.2 MP: the 17-MP copies of one wallpaper left out
        with Image.open(p) as im:
            return im.width * im.height <= 4_200_000

    walls = sorted(p for p in extract("mate-backgrounds", cache).rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p.is_file() and not p.is_symlink() and fits(p))
    picks = random.Random(seed).sample(walls, min(photos, len(walls)))
    sounds = sorted(p for p in extract("alsa-utils", cache).rglob("*.wav") if p.is_file() and not p.is_symlink())
    texts = sorted(p for p in (extract("fortunes", cache) / "usr" / "share" / "games" / "fortunes").glob("*")
                   if p.is_file() and not p.is_symlink())  # the fortunes and their .dat indexes
    for group, files in (("photos", picks), ("sounds", sounds), ("fortunes", texts)):
        for p in files:
            (out / group).mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, out / group / p.name)
    return out


def lossy_run(args: argparse.Namespace) -> None:
    """One held-out mixed folder archived exactly and with ``lossless: false`` (photos and sounds
    lossy by the zoo models against the classic lossy codecs, the rest exactly): bytes on disk."""
    work = WORK / "archive-lossy"
    work.mkdir(parents=True, exist_ok=True)
    src = lossy_folder(work)
    entry: dict[str, Any] = {"path": str(src), "bytes": _size(src),
                             "files": sum(1 for p in src.rglob("*") if p.is_file())}
    for label, lossless in (("exact", True), ("lossy", False)):
        entry[label] = aec_archive(src, work, args.effort, None, lossless=lossless)
        entry[label].pop("per-file best classic")
        print(json.dumps({label: {k: entry[label][k] for k in ("bytes", "payload_bytes", "identical",
                                                               "encode_seconds")}}), flush=True)
    from cluster.dataset import open_dataset
    from cluster.storage import Location

    rows = open_dataset(Location.of(str(work / "table"))).dataset.to_table(
        columns=["key", "modality", "codec", "bytes", "payload_bytes", "quality"]).to_pylist()
    entry["lossy rows"] = [{k: (json.loads(r[k]) if k == "quality" and r[k] else r[k]) for k in r}
                           for r in rows if r["modality"] in ("image", "audio")]
    (BENCH_DIR / "archive-lossy.json").write_text(json.dumps({"machine": machine(), "effort": args.effort,
                                                              "folder": entry}, indent=1))


def fitted_run(args: argparse.Namespace) -> None:
    """The learned codecs fitted on each folder against the zoo's, on the same sample."""
    from aecore.zoo import default_entry

    path = BENCH_DIR / args.out
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    results.update({"machine": machine(), "effort": args.effort, "folders": results.get("folders", {})})
    for name in args.folders:
        src = folder(name)
        work = WORK / f"archive-fit-{name}"
        before = results["folders"].get(Path(name).name, {}).get("fitted", {})
        keep = args.keep_models and all(m in before for m in args.fit) and (work / "registry").is_dir()
        if not keep:
            shutil.rmtree(work / "registry", ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        entry: dict[str, Any] = {"path": str(src), "fitted": {m: before[m] for m in args.fit} if keep else {}}
        for modality in args.fit if not keep else ():
            entry["fitted"][modality] = fit(src, work, modality, f"{Path(name).name}-{modality}")
            print(json.dumps({name: {modality: entry["fitted"][modality]}}), flush=True)
        sample = learned_sample(src, work, args.fit, args.sample)
        entry.update(sample_bytes=_size(sample), sample_files=sum(1 for p in sample.rglob("*") if p.is_file()))
        zoo = {m: f"zoo:{e.name}" for m in args.fit if (e := default_entry(m)) is not None}
        entry["zoo models"] = aec_archive(sample, work, args.effort, zoo)
        entry["fitted models"] = aec_archive(sample, work, args.effort, {m: f["model"] for m, f in entry["fitted"].items()})
        for key in ("zoo models", "fitted models"):
            entry[key]["models"] = zoo if key == "zoo models" else {m: f["model"] for m, f in entry["fitted"].items()}
        results["folders"][Path(name).name] = entry
        print(json.dumps({name: {k: {"bytes": entry[k]["bytes"], "learned_share_of_bytes": entry[k]["learned_share_of_bytes"]}
                                 for k in ("zoo models", "fitted models")}}), flush=True)
        path.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
