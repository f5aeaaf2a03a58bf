"""The commit protocol of a latents table: Delta Lake transactions, checked against each other.

    1. write tasks write parts under the table (cluster.stage): no reader sees them yet;
    2. the driver commits a group of parts in one Delta transaction that
       - is made against the table version whose ids it checked, and is not re-based past a commit
         it has not seen (``max_commit_retries=0``): a part never adds an id another commit added;
       - carries an application transaction (run id, group number), so a commit whose answer was
         lost is recognised, not repeated;
    3. on a conflict it reads the ids the winning commits added (their parts' ``id`` column), drops
       those rows from its own parts, and tries again.

So two jobs appending the same inputs at once end with each input once. Input errors are rows
appended to the errors table (cluster.table.ERRORS_TABLE), never rewritten. A driver killed at
any point leaves at most parts no commit lists — invisible to readers, removed by
``aec datasets vacuum`` — and a re-run skips every input whose uri is committed.
"""

from __future__ import annotations

import json
import posixpath
import random
import time
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import Schema, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError
from deltalake.transaction import AddAction, CommitProperties, Transaction, create_table_with_add_actions

from cluster.clock import utc_now
from cluster.stage import describe_part, part_name, write_part
from cluster.storage import Location, StorageError, with_retries
from cluster.table import (
    ERROR_SCHEMA,
    ERRORS_TABLE,
    META_DIR,
    delta_options,
    load_table,
    read_properties,
    table_properties,
    table_uri,
)

__all__ = ["DatasetCommitter", "MAX_CONFLICTS"]

MAX_CONFLICTS = 200  # commits lost to other writers in a row before a job gives up (and can be re-run)
_KEPT = {"_delta_log", META_DIR}  # what a table folder holds besides parts
# A checkpoint every 20 commits (Delta's default: 100): every commit and every refresh replays
# the log since the last checkpoint, which grew to ~40 ms per refresh at 100 commits of 10 parts.
_DELTA_CONFIG = {"delta.checkpointInterval": "20"}


@dataclass
class DatasetCommitter:
    output: Location
    metadata: dict[str, Any]
    schema: pa.Schema
    run_id: str
    run: dict[str, Any] = field(default_factory=dict)
    group: int = 0
    _table: Any = None  # deltalake.DeltaTable, once open
    _files: set[str] = field(default_factory=set)  # the parts of the snapshot whose ids are read
    _ids: list[pa.Array] = field(default_factory=list)
    _uris: list[pa.Array] = field(default_factory=list)

    @property
    def app_id(self) -> str:
        return f"aec-compress-{self.run_id}"

    @property
    def version(self) -> int:
        return self._table.version()

    @property
    def rows(self) -> int:
        """Rows committed in the table, as of this job's last look."""
        return sum(len(a) for a in self._ids)

    def _where(self) -> str:
        return f"output {self.output.url!r}"

    # -- opening ---------------------------------------------------------------------
    def open(self, overwrite: bool = False) -> None:
        """Load (or create, or with ``overwrite`` replace) the table; read the committed ids."""
        table = load_table(self.output)
        if table is not None and not read_properties(table) and not _unfinished_create(table):
            # a job creating it beside us may have set its properties after our snapshot and before
            # the history we read (seen on S3 with two drivers started together): look again
            table = load_table(self.output)
            if table is not None and not read_properties(table) and not _unfinished_create(table):
                raise StorageError(f"{self._where()} is a Delta table aec did not write; choose another output")
        if table is None:
            self._refuse_foreign()
            table = self._create("error")
        elif overwrite:
            table = self._create("overwrite")
        if not read_properties(table):
            # delta-rs refuses properties it does not know at creation: they are a second commit
            # (a job killed between the two leaves an empty table that the next job finishes).
            try:
                table.alter.set_table_properties(
                    table_properties(self.metadata), raise_if_not_exists=False,
                    commit_properties=CommitProperties(custom_metadata={"aec.run_id": self.run_id,
                                                                        "aec.operation": "properties"}))
            except Exception:  # noqa: BLE001 - a job creating it beside us set them first: checked below
                pass
            with_retries(table.update_incremental, what=self._where())
        self._table = table
        self._check_metadata()
        self._refresh()
        self.run = {"run_id": self.run_id, "started": utc_now(), "status": "running", "rows": 0, "errors": 0,
                    "skipped": 0, "input_bytes": 0, "payload_bytes": 0, "part_bytes": 0,
                    "first_version": self.version}

    def _refuse_foreign(self) -> None:
        fs, path = self.output.fs, self.output.path
        if not with_retries(fs.exists, path, what=self._where()):
            return
        if not with_retries(fs.isdir, path, what=self._where()):
            raise StorageError(f"{self._where()} is a file; choose a folder for the dataset")
        foreign = [p for p in with_retries(fs.ls, path, detail=False, what=self._where())
                   if posixpath.basename(p.rstrip("/")) not in _KEPT
                   and not posixpath.basename(p).startswith("part-")]
        if foreign:
            raise StorageError(f"{self._where()} holds files but no aec dataset; choose another output")

    def _create(self, mode: str) -> Any:
        """A new table (``mode="error"``), or every row of the old one replaced by none
        (``"overwrite"``: one commit; the old rows stay readable at their versions until vacuum)."""
        schema = Schema.from_arrow(self.schema.remove_metadata())
        try:
            create_table_with_add_actions(
                table_uri(self.output), schema, [], mode=mode, name="aec latents", configuration=_DELTA_CONFIG,
                storage_options=delta_options(self.output),
                commit_properties=CommitProperties(custom_metadata={"aec.run_id": self.run_id, "aec.operation": (
                    "create" if mode == "error" else "overwrite")}))
        except Exception as exc:  # noqa: BLE001 - another job created it first: fine, if compatible
            if mode != "error" or load_table(self.output) is None:
                raise StorageError(f"{self._where()}: the table could not be written ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:200]}); check the output and re-run") from None
        if mode == "overwrite" and load_table(self._errors_location()) is not None:
            write_deltalake(table_uri(self._errors_location()), ERROR_SCHEMA.empty_table(), mode="overwrite",
                            storage_options=delta_options(self.output))
        return load_table(self.output)

    def _check_metadata(self) -> None:
        old = read_properties(self._table)
        for key, what in _DECODE_SETTINGS.items():
            if key in old and old.get(key) != self.metadata.get(key):
                # rows of both settings would sit under one table that says only one of them
                raise StorageError(
                    f"{self._where()} was written with {key}={_show(old.get(key))}, this job has "
                    f"{key}={_show(self.metadata.get(key))} ({what}); set {key}: {_show(old.get(key))} in the spec, "
                    "choose another output, or pass --overwrite")
        if old.get("model_ref") != self.metadata["model_ref"]:
            raise StorageError(
                f"{self._where()} holds a dataset of model {old.get('model_ref')}, not "
                f"{self.metadata['model_ref']}; choose another output or pass --overwrite")
        if old.get("bundle_sha256") != self.metadata.get("bundle_sha256"):
            # Same name and version, other weights (e.g. another registry): rows would not decode.
            raise StorageError(
                f"{self._where()} was encoded with other weights of {old.get('model_ref')} "
                f"(bundle sha256 {str(old.get('bundle_sha256'))[:12]}…, "
                f"this one {str(self.metadata.get('bundle_sha256'))[:12]}…); "
                "use the registry that encoded it, another output, or --overwrite")

    def _refresh(self) -> None:
        """Move to the table's latest version; read the ids and uris of parts not read yet."""
        with_retries(self._table.update_incremental, what=self._where())
        self._check_metadata()  # another job may have overwritten it with another model
        paths = set(pa.table(self._table.get_add_actions(flatten=True)).column("path").to_pylist())
        if self._files - paths:  # parts removed (an overwrite, an optimize): read the snapshot afresh
            self._files, self._ids, self._uris = set(), [], []
        new = sorted(paths - self._files)
        if new:
            files = [posixpath.join(self.output.path, p) for p in new]
            got = pds.dataset(files, format="parquet", filesystem=self.output.pyarrow_fs()).to_table(
                columns=["id", "uri"])
            self._ids.append(got.column("id").combine_chunks())
            self._uris.append(got.column("uri").combine_chunks())
        self._files = paths

    def committed(self, uris: list[str]) -> list[bool]:
        """For each uri: is it committed in the table (as of this job's last look)?"""
        if not uris:
            return []
        committed = pa.concat_arrays(self._uris) if self._uris else pa.array([], pa.string())
        # a name that is not UTF-8 is never committed (it becomes an error row): null, not a match
        probe = pa.array([u if _utf8(u) else None for u in uris], pa.string())
        return [bool(x) for x in pc.is_in(probe, value_set=committed).to_pylist()]

    def _committed_among(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are committed: the small set is hashed (once), the big one scanned."""
        if not self._ids:
            return set()
        if len(self._ids) > 64:  # one chunk per commit read: merge them now and then
            self._ids, self._uris = [pa.concat_arrays(self._ids)], [pa.concat_arrays(self._uris)]
        committed = pa.chunked_array(self._ids, pa.string())
        return set(pc.filter(committed, pc.is_in(committed, value_set=pa.array(ids, pa.string()))).to_pylist())

    # -- committing ------------------------------------------------------------------
    def commit(self, descriptors: list[dict[str, Any]]) -> int:
        """Commit staged parts (and record their batches' input errors): one Delta transaction.
        Returns the rows this commit added."""
        self.group += 1
        errors = [e for d in descriptors for e in json.loads(d["errors"])]
        if errors:
            self._append_errors(errors)
            self.run["errors"] += len(errors)
        parts = [d for d in descriptors if d["file"]]
        if not parts:
            return 0
        for attempt in range(MAX_CONFLICTS):
            self._refresh()
            if (self._table.transaction_version(self.app_id) or 0) >= self.group:
                break  # committed by the last attempt, whose answer was lost
            parts = self._without_committed(parts)
            if not parts:
                break
            try:
                self._table.create_write_transaction(
                    [_add_action(d) for d in parts], mode="append", schema=self._table.schema(),
                    commit_properties=CommitProperties(
                        max_commit_retries=0, app_transactions=[Transaction(self.app_id, self.group)],
                        custom_metadata={"aec.run_id": self.run_id, "aec.group": self.group,
                                         "aec.rows": sum(d["rows"] for d in parts),
                                         "aec.model_ref": self.metadata["model_ref"],
                                         "aec.bundle_sha256": self.metadata.get("bundle_sha256")}))
                break
            except CommitFailedError:
                time.sleep(random.uniform(0.05, 0.2) * min(attempt + 1, 10))  # another writer was first
            except Exception as exc:
                if not _transient(exc):
                    raise
                time.sleep(1.0)
        else:
            raise StorageError(f"{self._where()}: {MAX_CONFLICTS} commits in a row lost to other writers; "
                               "re-run the job: committed rows are kept")
        # What this commit added is known: count it as read, so the next refresh skips these parts.
        mine = [d for d in parts if d["file"] not in self._files]
        if mine:
            self._ids.append(pa.array([i for d in mine for i in d["ids"]], pa.string()))
            self._uris.append(pa.array([u for d in mine for u in d["uris"]], pa.string()))
            self._files.update(d["file"] for d in mine)
        rows = sum(d["rows"] for d in parts)
        self.run["rows"] += rows
        self.run["input_bytes"] += sum(d["input_bytes"] for d in parts)
        self.run["payload_bytes"] += sum(d["payload_bytes"] for d in parts)
        self.run["part_bytes"] += sum(d["size"] for d in parts)
        return rows

    def _without_committed(self, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Parts with the rows already committed (by another job, or a retried task) dropped."""
        taken = self._committed_among([i for d in parts for i in d["ids"]])
        kept = []
        for d in parts:
            if not taken.intersection(d["ids"]):
                kept.append(d)
                taken.update(d["ids"])
                continue
            # Rewrite the part with the new rows only; the old one is this run's, never committed.
            src = posixpath.join(self.output.path, d["file"])
            table = pds.dataset(src, format="parquet", filesystem=self.output.pyarrow_fs()).to_table()
            table = table.filter(pc.invert(pc.is_in(table.column("id"), value_set=pa.array(list(taken), pa.string()))))
            with_retries(self.output.fs.rm, src, what=self._where())
            if not table.num_rows:
                continue
            table = table.cast(self.schema)
            name = part_name(self.run_id, table.column("id").to_pylist())
            d = {**describe_part(name, table, write_part(self.output, name, table)), "errors": "[]"}
            kept.append(d)
            taken.update(d["ids"])
        return kept

    def _errors_location(self) -> Location:
        return self.output.join(*ERRORS_TABLE.split("/"))

    def _append_errors(self, errors: list[dict[str, Any]]) -> None:
        at = utc_now()
        rows = [{"uri": e["uri"], "sha256": e.get("sha256"), "bytes": e.get("bytes"),
                 "stage": e.get("stage") or "read", "reason": e.get("reason") or "", "run_id": self.run_id, "at": at}
                for e in errors]
        table = pa.Table.from_pylist(rows, schema=ERROR_SCHEMA)
        # A blind append: delta-rs re-bases it past other writers' commits by itself, except when
        # the errors table is being created by several jobs at once: then a conflict, tried again.
        for attempt in range(MAX_CONFLICTS):
            try:
                with_retries(write_deltalake, table_uri(self._errors_location()), table, mode="append",
                             storage_options=delta_options(self.output), what=self._where())
                return
            except (CommitFailedError, DeltaError) as exc:
                if isinstance(exc, DeltaError) and not isinstance(exc, CommitFailedError) and not _conflict(exc):
                    raise
                time.sleep(random.uniform(0.05, 0.2) * min(attempt + 1, 10))
        raise StorageError(f"{self._where()}: {MAX_CONFLICTS} appends of error rows in a row lost to other writers; "
                           "re-run the job: committed rows are kept")

    def finish(self, status: str, **extra: Any) -> dict[str, Any]:
        """Record the run's outcome in the table's history (an empty commit); the table's summary."""
        from cluster.dataset import open_dataset

        self.run.update(status=status, finished=utc_now(), **extra)
        record = {k: v for k, v in self.run.items() if k != "timeline"}
        with_retries(self._table.update_incremental, what=self._where())
        with_retries(self._table.create_write_transaction, [], mode="append", schema=self._table.schema(),
                     commit_properties=CommitProperties(custom_metadata={
                         "aec.run_id": self.run_id, "aec.run": json.dumps(record, sort_keys=True, default=str)}),
                     what=self._where())
        return {**open_dataset(self.output).totals(), "run": dict(self.run)}


#: dataset properties that change what decode gives back: an append must match them
_DECODE_SETTINGS = {
    "lossless": "lossless rows restore the very files, lossy rows other bytes",
    "rate_point": "the rate point sets the quality of every row",
    "modality": "rows of one modality per table",
    "zstd_dictionary": "rows coded with the table's zstd dictionary decode only with it",
}


def _show(value: Any) -> str:
    return "null" if value is None else json.dumps(value)


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _unfinished_create(table: Any) -> bool:
    """An empty table whose last commit is aec's create or overwrite: its properties are still to come."""
    last = table.history(1)
    return bool(last) and last[0].get("aec.operation") in ("create", "overwrite") and not len(
        pa.table(table.get_add_actions(flatten=True)))


def _add_action(d: dict[str, Any]) -> AddAction:
    return AddAction(d["file"], d["size"], {}, int(time.time() * 1000), True, d["stats"])


def _conflict(exc: BaseException) -> bool:
    """A delta-rs error that says another writer got there first (a racing create or commit)."""
    text = str(exc).lower()
    return any(s in text for s in ("concurrent", "conflict", "already exists", "version already"))


def _transient(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}"
    return any(s in text for s in ("Timeout", "timed out", "Connection", "connection", "503", "500"))
