"""Restoring a latents dataset to files, and measuring it against the originals.

    plan (driver: ids selected by ``where``; rows that would land on one name)
      -> read the committed parts (Ray Data tasks) -> RestoreBatch (actor pool: decode, write, compare)
      -> driver: failures and quality gathered
    (``workers=0``: the same RestoreBatch over the rows in this process, no Ray.)

Each row is restored at its ``key`` (its path relative to the collection root) under the output
folder, so the restore gives back the archive's tree. A lossless row is the very file; a lossy
row whose input format differs from the modality's output format gets that format's suffix added
(``a/photo.jpg`` -> ``a/photo.jpg.png``, so no two rows meet at one name). A key that is absolute,
climbs out with ``..``, or resolves outside the folder through a link is an error row, never a
write. ``where`` (SQL over the dataset's columns, e.g. ``key LIKE 'a/%'``) restores a subset.

A row that cannot be restored (a truncated or corrupt payload, a header that disagrees with its
row or exceeds the modality's limits) is reported and skipped; every other row is restored. The
originals are read only under a root the caller names (``originals``), at the row's ``key``,
never from the ``uri`` a dataset claims, and at most the row's ``bytes``.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aecore import Compressor, Modality, UnreadableInput, get_modality
from aecore.archive import FILE_CODECS, CodecContext, SolidBlocks, decode_payload, get_file_codec, learned_codec_id, payload_codec
from aecore.archive.solid import member_bytes
from aecore.errors import UserError
from cluster.dataset import LatentDataset
from cluster.storage import Location

__all__ = [
    "DatasetDecoders", "RESULT_SCHEMA", "RestoreBatch", "WhereError", "check_restore_target", "dataset_decoders",
    "decode_dataset", "decode_rows", "plan_restore", "restore_one", "restore_path", "row_is_exact", "select_ids"
]

_COLUMNS = ["id", "uri", "key", "sha256", "bytes", "shape", "payload", "modality", "codec", "entry", "link", "mode",
            "mtime_ns", "solid", "offset"]


@dataclass(frozen=True)
class DatasetDecoders:
    """What decodes a dataset's rows: its models' bundles by modality, its zstd dictionary, and
    where it lies (a member of a solid block whose holder row is in another batch fetches it)."""

    bundles: dict[str, bytes]
    dictionary: bytes | None = None
    url: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)
    version: int | None = None

    def context(self) -> CodecContext:
        from aecore import load_bundle

        return CodecContext(zstd_dictionary=self.dictionary, blocks=SolidBlocks(self._holder_payload),
                            compressors={m: load_bundle(b) for m, b in self.bundles.items()})

    def _holder_payload(self, holder: str) -> bytes | None:
        from cluster.dataset import open_dataset

        if self.url is None:
            return None
        ds = open_dataset(Location.of(self.url, self.storage_options), version=self.version)
        found = ds.dataset.to_table(columns=["payload"], filter=pc.field("id") == holder).column("payload")
        return found[0].as_py() if len(found) else None

    @property
    def output_suffix(self) -> str:
        """Where a lossy row of a single-model dataset lands (an exact archive's rows keep their keys)."""
        from aecore import get_modality, read_bundle

        if len(self.bundles) != 1:
            return ""
        return get_modality(read_bundle(next(iter(self.bundles.values())))["modality"]).output_suffix


def dataset_decoders(ds: LatentDataset, bundles: dict[str, bytes]) -> DatasetDecoders:
    from cluster.compress import load_dictionary

    sha = ds.metadata.get("zstd_dictionary")
    return DatasetDecoders(bundles, load_dictionary(ds.location, sha) if sha else None, ds.location.url,
                           dict(ds.location.storage_options), ds.version)


def _plain_key(key: str | None) -> bool:
    """A key that is a plain relative path: not absolute, no ``.``/``..``/empty parts, no
    backslashes or NUL. Only such keys are read (originals) or written (restores)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        return False
    return not any(p in ("", ".", "..") for p in key.split("/"))


def restore_path(key: str | None, lossless: bool, output_suffix: str) -> str | None:
    """Where a row is restored, relative to the output folder; None for a key that is not a
    plain relative path (absolute, ``..``, backslashes, NUL, empty parts)."""
    if not _plain_key(key):
        return None
    if lossless or key.lower().endswith(output_suffix.lower()):
        return key
    return key + output_suffix


class WhereError(UserError, ValueError):
    """A ``where`` condition DuckDB cannot run (one line, with the columns it may use)."""


def select_ids(ds: LatentDataset, where: str) -> set[str]:
    """The ids of the rows ``where`` (DuckDB SQL over every column but the payload) selects."""
    import duckdb

    from cluster.sql import connect

    columns = [c for c in ds.dataset.schema.names if c != "payload"]
    con = connect({"latents": ds.dataset})  # scanned lazily: only the columns the condition uses
    try:
        # one expression, never a statement: a filter of the relation, on a sandboxed connection
        ids = con.table("latents").filter(where).select("id").fetchall()
    except duckdb.Error as exc:
        raise WhereError(f"--where {where!r}: {str(exc).splitlines()[0]}; fix the condition "
                         f"(columns: {', '.join(columns)})") from None
    return {r[0] for r in ids}


def _write(out: Path, rel: str | None, data: bytes, written: set[str], overwrite: bool = False) -> Path:
    """Write ``data`` at ``out/rel``, refusing anything that would land outside ``out`` and (unless
    ``overwrite``) any file already there. The bytes go to a temporary name in the same folder and
    are renamed when whole: a full disk or a kill leaves no truncated file at the key."""
    if rel is None:
        raise ValueError("its key is not a relative path inside the collection; not written")
    target = out / rel
    if out not in target.resolve().parents:
        raise ValueError(f"{rel} resolves outside {out} (through a link); not written")
    if rel in written:
        raise ValueError(f"another row was already restored at {rel}; not written")
    target.parent.mkdir(parents=True, exist_ok=True)
    if out not in target.resolve().parents:
        raise ValueError(f"{rel} resolves outside {out} (through a link); not written")
    if not overwrite and (target.exists() or target.is_symlink()):
        if _holds(target, data):  # a retried batch (its actor's node was lost): this row is written
            written.add(rel)
            return target
        raise FileExistsError(f"{rel} exists in {out}; not overwritten (pass --overwrite to replace it)")
    tmp = target.with_name(f".{target.name}.aec-{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    written.add(rel)
    return target


def _holds(target: Path, data: bytes) -> bool:
    """``target`` is a regular file holding exactly ``data``."""
    try:
        if target.is_symlink() or not target.is_file() or target.stat().st_size != len(data):
            return False
        return target.read_bytes() == data
    except OSError:
        return False


#: what :func:`_write` names a file while it is being written
_TEMPORARY = ".*.aec-????????.tmp"


def sweep_temporary(out: Path) -> int:
    """Remove the temporary files a killed restore left under ``out`` (an actor on a lost node
    dies between writing and renaming); its batch was restored again elsewhere. Their count."""
    swept = 0
    for tmp in out.rglob(_TEMPORARY):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)
            swept += 1
    return swept


def _place(out: Path, row: dict[str, Any], written: set[str], overwrite: bool) -> None:
    """A link row as a link (its target as it was, never followed), a folder row as a folder."""
    rel = restore_path(row.get("key"), True, "")
    if rel is None:
        raise ValueError("its key is not a relative path inside the collection; not written")
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if out not in target.parent.resolve().parents and target.parent.resolve() != out:
        raise ValueError(f"{rel} resolves outside {out} (through a link); not written")
    if row["entry"] == "dir":
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise FileExistsError(f"{rel} exists in {out} and is not a folder; not replaced")
        target.mkdir(exist_ok=True)
        return
    if row["entry"] != "symlink" or row.get("link") is None:
        raise ValueError(f"entry {row['entry']!r} is not one aec restores; the row is corrupt")
    if target.is_symlink() or target.exists():
        if not overwrite or target.is_dir() and not target.is_symlink():
            raise FileExistsError(f"{rel} exists in {out}; not overwritten (pass --overwrite to replace it)")
        target.unlink()
    os.symlink(row["link"], target)
    written.add(rel)
    _set_times(target, row)


def _set_times(target: Path, row: dict[str, Any]) -> None:
    """The entry's mode and mtime as the archive recorded them (where it did)."""
    link = target.is_symlink()
    if row.get("mode") is not None and not link:
        os.chmod(target, row["mode"] & 0o7777)
    if row.get("mtime_ns") is not None:
        os.utime(target, ns=(row["mtime_ns"], row["mtime_ns"]), follow_symlinks=not link)


def _finish_folders(ds: LatentDataset, out: Path, selected: pa.Array) -> None:
    """Folders' modes and mtimes, deepest first, once everything inside them is written."""
    if "entry" not in ds.dataset.schema.names:
        return
    rows = ds.dataset.to_table(columns=["id", "key", "entry", "mode", "mtime_ns"], filter=pc.field("entry") == "dir")
    rows = rows.filter(pc.is_in(rows.column("id"), value_set=selected))
    for r in sorted(rows.to_pylist(), key=lambda r: -r["key"].count("/")):
        rel = restore_path(r["key"], True, "")
        if rel is None:
            continue
        target = out / rel
        if target.is_dir() and not target.is_symlink() and out in target.resolve().parents:
            _set_times(target, r)


RESULT_SCHEMA = pa.schema([("id", pa.string()), ("uri", pa.string()), ("reason", pa.string()),
                           ("quality", pa.string()), ("unreachable", pa.bool_())])


class RestoreBatch:
    """Restore a batch of rows to files under ``out`` — a Ray Data actor (the model loaded once,
    as an encoder is) or a plain call. One result row per input row: ``reason`` is null when the
    file was written; ``quality`` (JSON) when it was compared with its original."""

    def __init__(self, decoders: DatasetDecoders | Any, out: str, originals: str | None = None,
                 storage_options: dict[str, Any] | None = None, selected: pa.Array | Any | None = None,
                 threads: int = 1, overwrite: bool = False) -> None:
        import ray
        import torch

        torch.set_num_threads(max(1, threads))
        decoders = ray.get(decoders) if isinstance(decoders, ray.ObjectRef) else decoders
        self.ctx = decoders.context()
        self.out = Path(out)
        self.overwrite = overwrite
        self.originals = Location.of(originals, storage_options) if originals else None
        self.selected = ray.get(selected) if isinstance(selected, ray.ObjectRef) else selected

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.selected is not None:
            batch = batch.filter(pc.is_in(batch.column("id"), value_set=self.selected))
        rows = batch.to_pylist()
        results: list[dict[str, Any]] = []
        written: set[str] = set()
        for row, result in zip(rows, decode_rows(self.ctx, rows)):
            done = {"id": row["id"], "uri": row["uri"], "reason": None, "quality": None, "unreachable": False}
            results.append(done)
            if isinstance(result, Exception):  # one bad row must not stop the restore
                reason = str(result).splitlines()[0] if str(result) else type(result).__name__
                done["reason"] = f"{type(result).__name__}: {reason}"[:300]
                continue
            if (row.get("entry") or "file") != "file":
                try:
                    _place(self.out, row, written, self.overwrite)
                except (OSError, ValueError) as exc:
                    done["reason"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            data, lossless = result
            modality = _row_modality(row.get("modality"))
            suffix = modality.output_suffix if modality is not None else ""
            try:
                target = _write(self.out, restore_path(row.get("key"), lossless, suffix), data, written, self.overwrite)
                if lossless:
                    _set_times(target, row)
            except (OSError, ValueError) as exc:
                done["reason"] = f"{type(exc).__name__}: {exc}"[:300]
                continue
            if self.originals is not None:
                original = _read_original(self.originals, row["key"], row["bytes"])
                try:
                    if original is None:
                        raise UnreadableInput("unreachable")
                    if lossless or modality is None:
                        done["quality"] = json.dumps({"exact": float(original == data)})
                    else:
                        done["quality"] = json.dumps(modality.quality(modality.load(original).x, modality.load(data).x))
                except UnreadableInput:
                    done["unreachable"] = True
        return pa.Table.from_pylist(results, schema=RESULT_SCHEMA)


def _row_modality(name: str | None) -> Modality | None:
    from aecore.registry import MODALITIES

    return get_modality(name) if name in MODALITIES else None


def row_is_exact(row: dict[str, Any], archive_lossless: bool) -> bool:
    """Whether a row restores its very file: every row of an exact dataset; in a lossy one, a row
    whose codec is exact (a learned codec of a lossy modality codes lossy there)."""
    if archive_lossless or not row.get("codec"):
        return archive_lossless
    codec = FILE_CODECS.get(row["codec"])
    if codec is None:  # links and folders
        return True
    modality = _row_modality(row.get("modality"))
    return codec.exact and not (codec.learned and modality is not None and modality.lossy)


def plan_restore(ds: LatentDataset, output_suffix: str, where: str | None = None) -> tuple[pa.Array, list[dict[str, str]]]:
    """The ids to restore (those ``where`` selects), and failures for rows that would land where
    another row lands (the first by id wins): decided once, before any actor writes. A lossy
    row lands at its key plus its modality's output suffix (``output_suffix`` where the row does
    not name its modality), an exact one at its key."""
    lossless = bool(ds.metadata.get("lossless"))
    names = ds.dataset.schema.names
    rows = ds.dataset.to_table(columns=["id", "uri", "key"] + [c for c in ("codec", "modality") if c in names])
    if where:
        rows = rows.filter(pc.is_in(rows.column("id"), value_set=pa.array(sorted(select_ids(ds, where)), pa.string())))
    rows = rows.sort_by("id")
    seen: set[str] = set()
    keep, failures = [], []
    for r in rows.to_pylist():
        modality = _row_modality(r.get("modality"))
        rel = restore_path(r["key"], row_is_exact(r, lossless), modality.output_suffix if modality else output_suffix)
        if rel is not None and rel in seen:
            failures.append({"id": r["id"], "uri": r["uri"],
                             "reason": f"ValueError: another row was already restored at {rel}; not written"})
            continue
        if rel is not None:
            seen.add(rel)
        keep.append(r["id"])
    return pa.array(keep, pa.string()), failures


def decode_dataset(ds: LatentDataset, bundles: dict[str, bytes], out_dir: str | os.PathLike,
                   originals: Location | None = None,
                   progress: Callable[[int], None] | None = None, where: str | None = None,
                   workers: int = 0, batch_size: int = 32, overwrite: bool = False) -> dict[str, Any]:
    """Write every restorable row's file under ``out_dir`` at its key (only the rows ``where``
    selects, if given); quality against the originals under ``originals`` when given. Bad rows
    are listed in ``failures``, never fatal. ``workers`` > 0: a Ray Data job — the committed parts
    read in parallel, rows restored by an actor pool of that size; 0: in this process."""
    out = Path(out_dir).resolve()
    check_restore_target(ds, out)
    out.mkdir(parents=True, exist_ok=True)
    decoders = dataset_decoders(ds, bundles)
    selected, failures = plan_restore(ds, decoders.output_suffix, where)
    if progress and failures:
        progress(len(failures))
    originals_url = originals.url if originals is not None else None
    options = dict(originals.storage_options) if originals is not None else {}
    if workers:
        batches = _restore_on_ray(ds, decoders, out, originals_url, options, selected, workers, batch_size, overwrite)
    else:
        restore = RestoreBatch(decoders, str(out), originals_url, options, selected, threads=os.cpu_count() or 1,
                               overwrite=overwrite)
        batches = (restore(pa.Table.from_batches([b])) for b in ds.batches(_COLUMNS, batch_size=batch_size))
    rows, unreachable, quality = 0, 0, []
    for result in batches:
        for r in result.to_pylist():
            if r["reason"]:
                failures.append({"id": r["id"], "uri": r["uri"], "reason": r["reason"]})
            else:
                rows += 1
                unreachable += r["unreachable"]
                if r["quality"]:
                    quality.append(json.loads(r["quality"]))
        if progress:
            progress(result.num_rows)
    _finish_folders(ds, out, selected)
    swept = sweep_temporary(out) if workers else 0
    keys = sorted({k for q in quality for k in q})
    return {
        "rows": rows,
        "out": str(out),
        "failed": len(failures),
        "failures": failures,
        "compared": len(quality),
        "originals_unreachable": unreachable,
        "temporary_removed": swept,
        "quality": {k: float(np.mean([q[k] for q in quality])) for k in keys},
    }


def check_restore_target(ds: LatentDataset, out: Path) -> None:
    """Refuse an output folder that is the collection the dataset was made from, or inside it:
    a restore there would put reconstructions where the originals are."""
    recorded = ds.metadata.get("input")
    if not recorded:
        return
    try:
        source = Location.of(recorded)
    except Exception:  # noqa: BLE001 - an unparsable record names no folder to protect
        return
    if not source.is_local:
        return
    relation = Location.of(str(out)).overlaps(source)
    if relation in ("is", "is inside"):
        raise UserError(f"--out {out} {relation} the collection {recorded} this dataset was made from; "
                        "restore into another folder")


def restore_one(ds: LatentDataset, bundles: dict[str, bytes], key: str) -> bytes:
    """The restored bytes of the row at ``key`` (for standard output); a row that cannot be
    decoded is a one-line error."""
    columns = [c for c in _COLUMNS if c in ds.dataset.schema.names]
    rows = ds.dataset.to_table(columns=columns, filter=pc.field("key") == key).to_pylist()
    if len(rows) != 1:
        raise UserError(f"{len(rows)} rows have key {key!r} in {ds.location.url}; "
                        "`aec query DATASET \"SELECT key FROM latents\"` lists the keys")
    [result] = decode_rows(dataset_decoders(ds, bundles).context(), rows)
    if isinstance(result, Exception):
        raise UserError(f"the row at {key!r} cannot be restored ({type(result).__name__}: "
                        f"{str(result).splitlines()[0] if str(result) else ''}); the dataset is damaged there")
    return result[0]


def _read_parts(batch: pa.Table, url: str, storage_options: dict[str, Any]) -> pa.Table:
    """Ray Data task: the restore columns of the parts at ``batch["path"]``."""
    import pyarrow.parquet as pq

    fs = Location.of(url, storage_options).pyarrow_fs()
    tables = []
    for p in batch.column("path").to_pylist():
        names = pq.read_schema(p, filesystem=fs).names
        tables.append(pq.read_table(p, columns=[c for c in _COLUMNS if c in names], filesystem=fs))
    return pa.concat_tables(tables, promote_options="default")


def _restore_on_ray(ds: LatentDataset, decoders: DatasetDecoders, out: Path, originals: str | None, options: dict[str, Any],
                    selected: pa.Array, workers: int, batch_size: int, overwrite: bool) -> Iterator[pa.Table]:
    import ray

    from cluster.runtime import IO_TASK_CPUS, actor_cpus, io_tasks

    files = [posixpath.join(ds.location.path, f) for f in ds.dataset.files]
    if not files:
        return iter(())
    cpus = actor_cpus(workers)
    # One block per committed part (a part holds one encoder batch), read by tasks, so every actor
    # gets work (read_parquet packed a small dataset's parts into one block: one busy actor).
    data = ray.data.from_arrow([pa.table({"path": [f]}) for f in files]).map_batches(
        _read_parts, num_cpus=IO_TASK_CPUS, compute=ray.data.TaskPoolStrategy(size=io_tasks(workers)),
        batch_size=None, batch_format="pyarrow",
        fn_kwargs={"url": ds.location.url, "storage_options": dict(ds.location.storage_options)})
    restored = data.map_batches(
        RestoreBatch,
        fn_constructor_kwargs={"decoders": ray.put(decoders), "out": str(out), "originals": originals,
                               "storage_options": options, "selected": ray.put(selected),
                               "threads": max(1, int(cpus)), "overwrite": overwrite},
        compute=ray.data.ActorPoolStrategy(size=workers), batch_format="pyarrow", num_cpus=cpus,
        # a table with solid blocks: a part per batch, so one actor decodes each block once
        batch_size=None if "solid" in ds.dataset.schema.names else batch_size)
    return restored.iter_batches(batch_size=None, batch_format="pyarrow")


def decode_rows(ctx: CodecContext, rows: list[dict[str, Any]]) -> list[tuple[bytes, bool] | Exception]:
    """``(file bytes, exact?)`` of each row, or the exception that stopped it. A row's ``codec``
    says what wrote it: a classic codec decodes it alone; the learned rows of one modality are
    decoded together (a causal text coder steps the pieces of every row at once), and if that
    batch fails, row by row, so a bad row costs only itself."""
    out: list[tuple[bytes, bool] | Exception | None] = [None] * len(rows)
    learned: dict[str, list[int]] = {}
    holders = {r["id"]: r["payload"] for r in rows if r.get("solid") is not None and r["solid"] == r["id"]}
    blocks = ctx.blocks if ctx.blocks is not None else SolidBlocks()
    for i, r in enumerate(rows):
        if (r.get("entry") or "file") != "file":  # links and folders: nothing to decode
            out[i] = (b"", True)
            continue
        if r.get("solid") is not None:  # one file of a solid block: its slice of the decoded block
            try:
                stream = blocks.stream(r["solid"], ctx, holders.get(r["solid"]))
                out[i] = (member_bytes(stream, r.get("offset") or 0, r["bytes"], r.get("sha256")), True)
            except Exception as exc:  # noqa: BLE001 - an error row of the restore
                out[i] = exc
            continue
        codec = r.get("codec") or learned_codec_id(r.get("modality") or "")
        if payload_codec(r["payload"]) is not None or not codec.startswith("aec-"):
            try:
                out[i] = (decode_payload(codec, r["payload"], ctx, r.get("bytes")), get_file_codec(codec).exact)
            except Exception as exc:  # noqa: BLE001 - an error row of the restore
                out[i] = exc
        else:
            learned.setdefault(codec.removeprefix("aec-"), []).append(i)
    for modality, idx in learned.items():
        compressor = ctx.compressors.get(modality)
        if compressor is None:
            for i in idx:
                out[i] = ValueError(f"row coded by a {modality} model the dataset does not record; not restored")
            continue
        for i, result in zip(idx, _decode_learned(compressor, [rows[i] for i in idx])):
            out[i] = result
    return [r if r is not None else ValueError("not decoded") for r in out]


def _shape(r: dict[str, Any]) -> list[int] | None:
    return list(r["shape"]) if r.get("shape") else None


def _decode_learned(compressor: Compressor, rows: list[dict[str, Any]]) -> list[tuple[bytes, bool] | Exception]:
    try:
        return [(data, info.lossless) for data, _, info in
                compressor.decode_many([r["payload"] for r in rows], [_shape(r) for r in rows])]
    except Exception:  # noqa: BLE001 - find the bad row(s) one by one
        out: list[tuple[bytes, bool] | Exception] = []
        for r in rows:
            try:
                data, _, info = compressor.decode(r["payload"], _shape(r))
                out.append((data, info.lossless))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out


def _read_original(root: Location, key: str | None, size: int) -> bytes | None:
    """The original at ``root/key``, only if ``key`` stays under ``root`` and the file is at
    most ``size`` bytes (the row's own record of it)."""
    if not _plain_key(key):
        return None
    path = posixpath.join(root.path, key)
    try:
        if root.is_local:
            real, real_root = os.path.realpath(path), os.path.realpath(root.path)
            if not real.startswith(real_root.rstrip("/") + "/") or not os.path.isfile(real):
                return None
            with open(real, "rb") as f:
                data = f.read(size + 1)
        else:
            with root.fs.open(path, "rb") as f:
                data = f.read(size + 1)
    except Exception:  # noqa: BLE001 - an unreachable original only means no comparison
        return None
    return data if len(data) <= size else None
