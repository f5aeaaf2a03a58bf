"""The commit protocol of a latents dataset: what readers see, and what a re-run skips.

    1. write tasks stage parts beside the output:   .OUTPUT.staging/part-<hash>.parquet
    2. the driver moves a group of parts into OUTPUT (one atomic object/rename per part)
    3. then rewrites OUTPUT/_aec/manifest.json (one atomic write): the committed state

Readers that glob ``OUTPUT/**/*.parquet`` only ever see complete parts. A part moved in by a
driver that died before step 3 is *adopted* by the next run (its footer and rows are checked),
so its inputs are neither lost nor encoded twice. A re-run skips every input whose uri is
already committed; every id appears in exactly one part.
"""

from __future__ import annotations

import io
import json
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cluster.clock import utc_now
from cluster.lease import LEASE_FILE
from cluster.stage import describe_part, part_name
from cluster.storage import Location, StorageError, with_retries

__all__ = ["DatasetCommitter", "ERRORS", "MANIFEST", "META_DIR", "STAGING_SUFFIX", "remove_dataset"]

META_DIR = "_aec"
MANIFEST = f"{META_DIR}/manifest.json"
ERRORS = f"{META_DIR}/errors.jsonl"
STAGING_SUFFIX = ".staging"


def remove_dataset(output: Location) -> int:
    """Delete the aec dataset at ``output`` — its parts, stray parts and ``_aec/`` — and nothing
    else; a location that holds files but no dataset is refused. Returns the files removed."""
    fs, path = output.fs, output.path
    what = f"output {output.url!r}"
    if not with_retries(fs.exists, path, what=what):
        return 0
    manifest = posixpath.join(path, MANIFEST)
    entries = with_retries(fs.ls, path, detail=False, what=what) if with_retries(fs.isdir, path, what=what) else [path]
    entries = [p for p in entries if posixpath.basename(p.rstrip("/")) != META_DIR]  # the writer lease is there
    if not with_retries(fs.exists, manifest, what=what):
        if entries:
            raise StorageError(f"output {output.url!r} holds files but no aec dataset; --overwrite replaces only "
                               "aec datasets: choose another output")
        return 0
    listed = {f["name"] for f in json.loads(with_retries(fs.cat_file, manifest, what=what)).get("files", [])}
    doomed = [p for p in entries if posixpath.basename(p.rstrip("/")) in listed
              or (posixpath.basename(p).startswith("part-") and p.endswith(".parquet"))]
    for p in doomed:
        with_retries(fs.rm, p, what=what)
    # everything of the old dataset's metadata but the writer lease (the job overwriting it holds it)
    meta = posixpath.join(path, META_DIR)
    kept = False
    for p in with_retries(fs.ls, meta, detail=False, what=what):
        if posixpath.basename(p.rstrip("/")) == LEASE_FILE:
            kept = True
        else:
            with_retries(fs.rm, p, recursive=True, what=what)
    if not kept:
        try:
            with_retries(fs.rm, meta, recursive=True, what=what)
        except FileNotFoundError:  # an object store has no empty folders
            pass
    return len(doomed)


@dataclass
class DatasetCommitter:
    output: Location
    metadata: dict[str, Any]
    run_id: str
    manifest: dict[str, Any] = field(default_factory=dict)
    committed_ids: set[str] = field(default_factory=set)
    committed_uris: set[str] = field(default_factory=set)
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def staging(self) -> Location:
        return self.output.sibling(f".{posixpath.basename(self.output.path)}{STAGING_SUFFIX}")

    def _io(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return with_retries(fn, *args, what=f"output {self.output.url!r}", **kwargs)

    # -- opening: the committed state, plus whatever a dead driver left behind ----------
    def open(self) -> None:
        fs, path = self.output.fs, self.output.path
        manifest_path = posixpath.join(path, MANIFEST)
        if self._io(fs.exists, manifest_path):
            self.manifest = json.loads(self._io(fs.cat_file, manifest_path))
            old = self.manifest.get("metadata", {})
            if old.get("model_ref") != self.metadata["model_ref"]:
                raise StorageError(
                    f"output {self.output.url!r} holds a dataset of model {old.get('model_ref')}, not "
                    f"{self.metadata['model_ref']}; choose another output or pass --overwrite")
            if old.get("bundle_sha256") != self.metadata.get("bundle_sha256"):
                # Same name and version, other weights (e.g. another registry): rows would not decode.
                raise StorageError(
                    f"output {self.output.url!r} was encoded with other weights of {old.get('model_ref')} "
                    f"(bundle sha256 {str(old.get('bundle_sha256'))[:12]}…, "
                    f"this one {str(self.metadata.get('bundle_sha256'))[:12]}…); "
                    "use the registry that encoded it, another output, or --overwrite")
        else:
            self.manifest = {"format": "aec-dataset/1", "files": [], "runs": [], "rows": 0, "input_bytes": 0,
                             "payload_bytes": 0, "quality_sums": {}, "quality_counts": {}}
        self.manifest["metadata"] = self.metadata
        errors_path = posixpath.join(path, ERRORS)
        if self._io(fs.exists, errors_path):
            for line in self._io(fs.cat_file, errors_path).decode().splitlines():
                if line.strip():
                    e = json.loads(line)
                    self.errors[e["uri"]] = e
        names = [f["name"] for f in self.manifest["files"]]
        if names:
            table = self._read_parts(names, ["id", "uri"])
            self.committed_ids = set(table.column("id").to_pylist())
            self.committed_uris = set(table.column("uri").to_pylist())
        self._adopt_orphans(set(names))
        self.run = {"run_id": self.run_id, "started": utc_now(), "status": "running", "rows": 0, "errors": 0,
                    "skipped": 0}
        self.manifest["runs"].append(self.run)

    def _read_parts(self, names: Iterable[str], columns: list[str]) -> pa.Table:
        import pyarrow.dataset as pds

        files = [posixpath.join(self.output.path, n) for n in names]
        return pds.dataset(files, format="parquet", filesystem=self.output.pyarrow_fs()).to_table(columns=columns)

    def _adopt_orphans(self, known: set[str]) -> None:
        """Parts moved in by a driver that died before writing the manifest."""
        fs, path = self.output.fs, self.output.path
        if not self._io(fs.exists, path):
            return
        for p in sorted(self._io(fs.ls, path, detail=False)):
            name = posixpath.basename(p.rstrip("/"))
            if not (name.startswith("part-") and name.endswith(".parquet")) or name in known:
                continue
            data = self._io(fs.cat_file, p)
            try:
                table = pq.read_table(io.BytesIO(data))
            except (pa.ArrowInvalid, OSError):
                self._io(fs.rm, p)  # not a complete part: its inputs are simply redone
                continue
            ids = table.column("id").to_pylist()
            if self.committed_ids.intersection(ids) or name != part_name(ids):
                self._io(fs.rm, p)
                continue
            self._record(describe_part(name, table, data))

    def _record(self, part: dict[str, Any]) -> None:
        """Count a part (a descriptor from :func:`describe_part`) as committed."""
        self.manifest["files"].append({k: part[k] for k in ("rows", "size", "sha256")} | {"name": part["file"]})
        self.manifest["rows"] += part["rows"]
        self.manifest["input_bytes"] += part["input_bytes"]
        self.manifest["payload_bytes"] += part["payload_bytes"]
        self.committed_ids.update(part["ids"])
        self.committed_uris.update(part["uris"])
        for uri in part["uris"]:
            self.errors.pop(uri, None)

    # -- committing ------------------------------------------------------------------
    def commit(self, descriptors: list[dict[str, Any]]) -> None:
        """Move the staged parts in, then write the manifest: one commit."""
        fs = self.output.fs
        self._io(fs.makedirs, posixpath.join(self.output.path, META_DIR), exist_ok=True)
        for d in descriptors:
            for e in json.loads(d["errors"]):
                self.errors[e["uri"]] = e
                self.run["errors"] += 1
            for q in json.loads(d["quality"]):
                for k, v in q.items():
                    self.manifest["quality_sums"][k] = self.manifest["quality_sums"].get(k, 0.0) + v
                    self.manifest["quality_counts"][k] = self.manifest["quality_counts"].get(k, 0) + 1
            if not d["file"]:
                continue
            src = posixpath.join(self.staging.path, d["file"])
            if self.committed_ids.intersection(d["ids"]):
                # A retried task whose batch overlapped committed rows: keep only the new ones.
                table = pq.read_table(io.BytesIO(self._io(fs.cat_file, src)))
                table = table.filter(pc.invert(pc.is_in(table.column("id"), pa.array(list(self.committed_ids)))))
                self._io(fs.rm, src)
                if not table.num_rows:
                    continue
                buf = io.BytesIO()
                pq.write_table(table, buf, compression="zstd")
                d = describe_part(part_name(table.column("id").to_pylist()), table, buf.getvalue())
                src = posixpath.join(self.staging.path, d["file"])
                self._io(fs.pipe_file, src, buf.getvalue())
            # The staged descriptor already says what the part holds: no read-back after the move.
            self._io(fs.mv, src, posixpath.join(self.output.path, d["file"]))
            self._record(d)
            self.run["rows"] += d["rows"]
            self.run["input_bytes"] = self.run.get("input_bytes", 0) + d["input_bytes"]
        self._write_state()

    def finish(self, status: str, **extra: Any) -> dict[str, Any]:
        self.run.update(status=status, finished=utc_now(), **extra)
        self._write_state()
        try:
            self._io(self.staging.fs.rm, self.staging.path, recursive=True)
        except (FileNotFoundError, StorageError):
            pass
        return self.summary()

    def _write_state(self) -> None:
        fs = self.output.fs
        self._io(fs.makedirs, posixpath.join(self.output.path, META_DIR), exist_ok=True)
        errors = "".join(json.dumps(e, sort_keys=True) + "\n" for e in sorted(self.errors.values(), key=lambda e: e["uri"]))
        self._io(fs.pipe_file, posixpath.join(self.output.path, ERRORS), errors.encode())
        m = self.manifest
        m["errors"] = len(self.errors)
        m["ratio"] = m["input_bytes"] / m["payload_bytes"] if m["payload_bytes"] else None
        m["quality"] = {k: m["quality_sums"][k] / m["quality_counts"][k] for k in m["quality_sums"]}
        m["parquet_bytes"] = sum(f["size"] for f in m["files"])
        m["updated"] = utc_now()
        # The manifest goes last; on object stores one PUT is atomic, locally a rename is.
        blob = json.dumps(m, indent=2, sort_keys=True).encode()
        target = posixpath.join(self.output.path, MANIFEST)
        if self.output.is_local:
            tmp = target + f".tmp-{self.run_id}"
            self._io(fs.pipe_file, tmp, blob)
            self._io(fs.mv, tmp, target)
        else:
            self._io(fs.pipe_file, target, blob)

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"rows": m["rows"], "errors": m["errors"], "input_bytes": m["input_bytes"],
                "payload_bytes": m["payload_bytes"], "parquet_bytes": m["parquet_bytes"], "ratio": m["ratio"],
                "quality": m["quality"], "run": dict(self.run)}
