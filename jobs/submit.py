"""Jobs on a Ray cluster through the Ray Jobs API: submit a spec, then status, logs, cancel.

The project code (``aecore``, ``cluster``, ``jobs`` as ``py_modules``) and the spec (in the
job's ``working_dir``) travel with the job in its ``runtime_env``, so the cluster needs only
the image's dependencies. Storage endpoints and credentials (``AWS_*``) travel as
``env_vars``, never in the spec. The cluster's token is found where Ray keeps it and sent
with every call (token authentication stays on).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aecore.errors import UserError
from cluster.clock import utc_now
from cluster.runtime import auth_headers, public_storage_env
from jobs.catalog import JobCatalog, new_job_id, spec_digest
from jobs.spec import JobSpec

__all__ = ["ClusterError", "JobsClient", "Submitted", "resolve_address"]

_PACKAGES = ("aecore", "cluster", "jobs")
_ROOT = Path(__file__).resolve().parent.parent


class ClusterError(UserError, RuntimeError):
    """The cluster cannot be reached or refused a call; the message says what to do."""


def resolve_address(address: str | None, home: Path) -> str:
    """--address, else AEC_ADDRESS, else the head `aec cluster up` started, else an http RAY_ADDRESS."""
    from cluster.head import head_status

    if address:
        return address
    if os.environ.get("AEC_ADDRESS"):
        return os.environ["AEC_ADDRESS"]
    head = head_status(home)
    if head is not None:
        return head.address
    ray_address = os.environ.get("RAY_ADDRESS", "")
    if ray_address.startswith(("http://", "https://")):
        return ray_address
    raise ClusterError("no cluster address: start a local one with `aec cluster up`, or pass --address "
                       "http://HEAD:8265 (or set AEC_ADDRESS)")


@dataclass(frozen=True)
class Submitted:
    job_id: str
    address: str
    entrypoint: str


class JobsClient:
    """A Jobs API client for one cluster address, with one-line errors."""

    def __init__(self, address: str) -> None:
        from ray.job_submission import JobSubmissionClient

        self.address = address
        for noisy in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
            logging.getLogger(noisy).setLevel(logging.WARNING)  # one INFO line per uploaded package
        try:
            self.client = JobSubmissionClient(address, headers=auth_headers())
        except Exception as exc:  # noqa: BLE001 - connection refused, auth, version check
            raise _cluster_error(exc, address) from None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise _cluster_error(exc, self.address) from None

    def submit(self, job: JobSpec, catalog: JobCatalog, *, name_prefix: str = "aec", extra_env: dict[str, str] | None = None,
               schedule: str | None = None) -> Submitted:
        job = job.with_absolute_paths(Path.cwd())
        job_id = new_job_id(name_prefix, job.name)
        spec = job.model_dump()
        # Never credentials: Ray writes env_vars in plain text to its logs. The cluster has its own
        # (workers' environment, instance profile, Kubernetes secret); where to reach storage is no secret.
        env = public_storage_env()
        env.update({"AEC_JOB_ID": job_id, **(extra_env or {})})
        entrypoint = f"python -m jobs.run {job.kind} spec.yaml"
        with tempfile.TemporaryDirectory(prefix="aec-submit-") as wd:
            Path(wd, "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
            runtime_env = {
                "working_dir": wd,
                "py_modules": [str(_ROOT / p) for p in _PACKAGES],
                "excludes": ["__pycache__", "*.pyc"],
                "env_vars": env,
            }
            catalog.update_job(job_id, kind=job.kind, name=job.name, status="SUBMITTED", submitted_at=utc_now(),
                               address=self.address, spec_sha256=spec_digest(spec), spec=_public(spec),
                               input=job.input, output=getattr(job, "output", None), model=job.model,
                               schedule=schedule)
            try:
                self._call(self._submit, entrypoint=entrypoint, runtime_env=runtime_env, submission_id=job_id,
                           metadata={"aec_kind": job.kind, "aec_name": job.name, "aec_registry": job.registry},
                           entrypoint_num_cpus=0)
            except ClusterError as exc:
                catalog.update_job(job_id, status="FAILED", message=f"submission failed: {exc}", finished_at=utc_now())
                raise
        return Submitted(job_id, self.address, entrypoint)

    def _submit(self, **kwargs: Any) -> None:
        """Submit; a head that has just started answers "No available agent" for a few seconds."""
        from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

        not_ready = retry_if_exception(lambda e: "no available agent" in str(e).lower())
        retry(retry=not_ready, stop=stop_after_delay(60), wait=wait_fixed(1), reraise=True)(self.client.submit_job)(**kwargs)

    def status(self, job_id: str) -> str:
        return str(self._call(self.client.get_job_status, job_id).value)

    def info(self, job_id: str) -> dict[str, Any]:
        d = self._call(self.client.get_job_info, job_id)
        return {"status": str(d.status.value), "message": d.message, "start_time": d.start_time, "end_time": d.end_time,
                "entrypoint": d.entrypoint, "metadata": dict(d.metadata or {})}

    def logs(self, job_id: str) -> str:
        return self._call(self.client.get_job_logs, job_id)

    def stop(self, job_id: str) -> bool:
        return bool(self._call(self.client.stop_job, job_id))

    def list(self) -> list[dict[str, Any]]:
        return [{"id": j.submission_id, "status": str(j.status.value), "entrypoint": j.entrypoint,
                 "start_time": j.start_time, "end_time": j.end_time, "metadata": dict(j.metadata or {})}
                for j in self._call(self.client.list_jobs)]


def _public(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as recorded (specs hold no credentials: ``jobs.spec`` refuses them)."""
    return dict(spec)


def _cluster_error(exc: Exception, address: str) -> ClusterError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "authentication" in low or "401" in low or "unauthorized" in low or "token" in low:
        return ClusterError(f"the cluster at {address} refused the request: authentication token missing or wrong; "
                            "set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to the cluster's token")
    if "connection" in low or "failed to connect" in low or "refused" in low or "timed out" in low:
        return ClusterError(f"no Ray cluster answers at {address}; start one with `aec cluster up` or check --address")
    if "does not exist" in low or "not found" in low or "404" in low:
        return ClusterError(f"the cluster at {address} has no such job ({text[:160]}); see `aec jobs list`")
    return ClusterError(f"the cluster at {address} failed the request: {text[:200]}")
