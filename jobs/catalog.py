"""The job and dataset catalog: one JSON record per job and per dataset, beside the registry.

    REGISTRY/_catalog/jobs/ID.json          kind, name, spec digest, model version, input, output,
                                            status, timings, counts, address, message
    REGISTRY/_catalog/datasets/DIGEST.json  output URL, model, rows, bytes, ratio, last job

Every job writes its own record (``aec train``/``aec compress`` locally, or the entrypoint of a
job submitted to a cluster), so the catalog is wherever the registry is: a bucket shared by the
submitters and the cluster in real use. Records are small and rewritten whole (one PUT).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
from typing import Any

from cluster.clock import utc_now, utc_text
from cluster.storage import Location, with_retries

__all__ = ["JobCatalog", "JobRun", "TERMINAL", "new_job_id", "spec_digest"]

#: statuses after which a job never changes (the Ray Jobs API's terminal statuses)
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})


def new_job_id(prefix: str, name: str) -> str:
    """``PREFIX-NAME-YYYYmmdd-HHMMSS-xxxxxx``: sortable by time, unique, readable in a listing."""
    import uuid

    return f"{prefix}-{name}-{utc_text(fmt='%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class JobCatalog:
    def __init__(self, registry_url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.loc = Location.of(registry_url, storage_options).join("_catalog")

    def _path(self, kind: str, key: str) -> str:
        return posixpath.join(self.loc.path, kind, f"{key}.json")

    def _write(self, kind: str, key: str, record: dict[str, Any]) -> None:
        fs = self.loc.fs
        with_retries(fs.makedirs, posixpath.join(self.loc.path, kind), exist_ok=True, what=f"catalog {self.loc.url!r}")
        with_retries(fs.pipe_file, self._path(kind, key), json.dumps(record, indent=2, sort_keys=True, default=str).encode(),
                     what=f"catalog {self.loc.url!r}")

    def _read_all(self, kind: str) -> list[dict[str, Any]]:
        fs, folder = self.loc.fs, posixpath.join(self.loc.path, kind)
        if not fs.exists(folder):
            return []
        records = []
        for path in fs.glob(posixpath.join(folder, "*.json")):
            try:
                records.append(json.loads(fs.cat_file(path)))
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # being rewritten, or not ours
        return records

    # jobs -------------------------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.loc.fs.cat_file(self._path("jobs", job_id)))
        except FileNotFoundError:
            return None

    def update_job(self, job_id: str, **fields: Any) -> dict[str, Any]:
        record = self.job(job_id) or {"id": job_id, "created_at": utc_now()}
        record.update({k: v for k, v in fields.items() if v is not None}, updated_at=utc_now())
        self._write("jobs", job_id, record)
        return record

    def jobs(self) -> list[dict[str, Any]]:
        return sorted(self._read_all("jobs"), key=lambda r: r.get("created_at", ""), reverse=True)

    # datasets ---------------------------------------------------------------------------------
    def record_dataset(self, output_url: str, **fields: Any) -> dict[str, Any]:
        key = hashlib.sha256(output_url.encode()).hexdigest()[:16]
        record = {"output": output_url, **fields, "updated_at": utc_now()}
        self._write("datasets", key, record)
        return record

    def datasets(self) -> list[dict[str, Any]]:
        return sorted(self._read_all("datasets"), key=lambda r: r.get("updated_at", ""), reverse=True)


def spec_digest(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


class JobRun:
    """The catalog record of the job running in this process: RUNNING on enter, then SUCCEEDED
    (with the counts given to :meth:`finish`) or FAILED (with the one-line reason).

    A job submitted through ``aec submit`` has its id in ``AEC_JOB_ID``; a local run gets one.
    """

    def __init__(self, catalog: JobCatalog, kind: str, spec: dict[str, Any]) -> None:
        import os

        self.catalog = catalog
        self.job_id = os.environ.get("AEC_JOB_ID") or new_job_id("local", spec.get("name", kind))
        self.kind = kind
        self.spec = {k: v for k, v in spec.items() if k != "storage_options"}
        self.started = time.time()
        self.fields: dict[str, Any] = {}

    def __enter__(self) -> JobRun:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            # `aec jobs cancel` (Ray's stop_job) sends SIGTERM: unwind like Ctrl-C, so the job
            # records STOPPED and a compress job leaves its committed rows in order
            def _stop(signum: int, frame: Any) -> None:
                raise KeyboardInterrupt(f"stopped by signal {signum}")

            signal.signal(signal.SIGTERM, _stop)
        self.catalog.update_job(self.job_id, kind=self.kind, name=self.spec.get("name"), status="RUNNING",
                                started_at=utc_now(), spec_sha256=spec_digest(self.spec), spec=self.spec,
                                input=self.spec.get("input"), output=self.spec.get("output"), model=self.spec.get("model"))
        return self

    def finish(self, **fields: Any) -> None:
        self.fields.update(fields)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        import typer
        from click.exceptions import Exit

        exits = (Exit, typer.Exit)  # typer's Exit is its own class, not click's
        seconds = round(time.time() - self.started, 3)
        failed = exc is not None and not (isinstance(exc, exits) and exc.exit_code == 0)
        if failed:
            message = self.fields.pop("message", None)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, exits):
                reason = message or f"exit code {exc.exit_code}"
            status = "STOPPED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            self.catalog.update_job(self.job_id, status=status, finished_at=utc_now(), seconds=seconds, message=reason[:300],
                                    **self.fields)
        else:
            status = self.fields.pop("status", "SUCCEEDED")  # a job may judge itself failed (max_error_rate)
            self.catalog.update_job(self.job_id, status=status, finished_at=utc_now(), seconds=seconds, **self.fields)
