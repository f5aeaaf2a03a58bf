"""Connecting to Ray: the embedded default (a local instance) or a cluster address.

Ray 2.60 clusters run with token authentication on. A client finds the token where Ray
itself looks (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``) and sends it;
:func:`auth_headers` gives it to HTTP clients such as the Jobs API.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import ray

from aecore.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["IO_TASK_CPUS", "STORAGE_TASK_CPUS", "PoolTooLarge", "io_tasks", "actor_cpus", "check_pool_fits", "live_nodes",
           "pool_room", "auth_headers", "auth_token", "ensure_auth_token", "ensure_ray", "in_ray_job", "public_storage_env"]

#: where object storage is, never who may read it: the only AWS_* variables aec hands to Ray
_PUBLIC_STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ALLOW_HTTP")


def public_storage_env() -> dict[str, str]:
    """The storage variables a job may carry: endpoint and region. Credentials stay in the
    environment of each machine (Ray logs runtime_env env_vars in plain text)."""
    return {k: os.environ[k] for k in _PUBLIC_STORAGE_ENV if os.environ.get(k)}

#: CPUs asked by a training run's file reads and a restore's part reads: they mostly wait on
#: storage, and a small ask lets them run beside actors that other jobs hold for life
IO_TASK_CPUS = 0.25

#: CPUs asked by a compress job's reads and part writes: a token, so Ray Data's per-operator
#: budget never holds them back behind the encoders (asking 0.25, they stalled: on three one-CPU
#: nodes no part was committed until every input was encoded; bench/nodes.py), yet not zero,
#: which would let them run on a head that has no CPUs for work (KubeRay: num-cpus 0, a small pod)
STORAGE_TASK_CPUS = 0.01


def io_tasks(workers: int) -> int:
    """Concurrent read/stage tasks of a job. Each runs in a Python worker of ~200 MiB; without a
    cap, Ray Data starts more of them as more tasks queue, and a job's memory grows with its
    input (measured: +35 % at 10x the files). As many as there are encoder actors keeps them fed."""
    return max(2, workers)

class PoolTooLarge(UserError, RuntimeError):
    """An actor pool that would hold every CPU its read and write tasks need: the job would wait forever."""


#: True once :func:`ensure_ray` started the embedded instance: a cluster that cannot grow
_embedded = False


def live_nodes() -> list[dict]:
    """The cluster's live nodes, as ``ray.nodes()`` describes them."""
    return [n for n in ray.nodes() if n["Alive"]]


def pool_room(actors: int, cpus: float, node_cpus: list[float], gang: bool = False) -> float:
    """The most CPU one node keeps free once ``actors`` actors of ``cpus`` CPUs each are placed,
    each on the node with the most room; -1 if none fits, or (``gang``: all must start, as Ray
    Train's workers) if one does not. An actor pool starts with those that fit."""
    free = list(node_cpus)
    placed = 0
    while placed < actors and free:
        roomiest = max(range(len(free)), key=free.__getitem__)
        if free[roomiest] + 1e-9 < cpus:
            break
        free[roomiest] -= cpus
        placed += 1
    if placed == 0 or (gang and placed < actors):
        return -1.0
    return max(free)


def check_pool_fits(what: str, actors: int, cpus: float, beside: float, gang: bool = False,
                    setting: str = "workers or cpus_per_worker") -> None:
    """Actors hold their CPUs for the whole job, and the tasks that feed them need ``beside`` CPU
    next to them (a training run's patch tasks 0.5, a compress job's reads and writes
    :data:`STORAGE_TASK_CPUS`). A pool that leaves no node that much room waits forever on a
    cluster that cannot grow. On the embedded instance that is an error naming the fix; on a
    cluster it is a warning, since an autoscaler may still add the nodes the pool waits for."""
    nodes = [float(n.get("Resources", {}).get("CPU", 0.0)) for n in live_nodes()]
    if pool_room(actors, cpus, nodes, gang) + 1e-9 >= beside:
        return
    message = (f"{what}: {actors} worker(s) of {cpus:g} CPU leave no node {beside:g} CPU for the tasks that "
               f"feed them (nodes' CPUs: {', '.join(f'{c:g}' for c in nodes) or 'none'})")
    if _embedded:
        raise PoolTooLarge(f"{message}; lower {setting}")
    log.warning("%s; the job waits until nodes join (on a cluster that cannot grow, lower %s)", message, setting)


#: set by Ray in the entrypoint process of a job submitted through the Jobs API
_JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"


def in_ray_job() -> bool:
    """True inside the entrypoint of a job submitted through the Ray Jobs API."""
    return _JOB_CONFIG_ENV in os.environ


def auth_token() -> str | None:
    """The cluster token, from where Ray looks for it; ``None`` if there is none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return os.environ["RAY_AUTH_TOKEN"].strip()
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if path and os.path.isfile(path):
            token = Path(path).read_text().strip()
            if token:
                return token
    return None


def auth_headers() -> dict[str, str]:
    token = auth_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def ensure_auth_token() -> Path:
    """The cluster token at ``~/.ray/auth_token`` (where Ray looks), created if missing; readable
    by its owner only (Ray's own generator leaves it world-readable)."""
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN"):
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # written whole under a temporary name, then linked into place: two commands starting at
        # once on a fresh machine both end up with the one token, never a half-written file
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path


def ensure_ray(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local instance."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        if auth_token() and "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"  # send the token the cluster expects
        # Where storage is travels with the job; credentials never do (Ray logs env_vars): the
        # cluster's machines have their own. A job submitted through the Jobs API already carries
        # these in its runtime_env (repeating a key there is a conflict Ray refuses).
        env = public_storage_env()
        runtime_env = {"env_vars": env} if env and not in_ray_job() else None
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver, runtime_env=runtime_env)
    else:
        # The embedded default stays on loopback: nothing of it is reachable from outside; its
        # token is made here, owner-only, before Ray would write one anyone on the machine can read.
        ensure_auth_token()
        global _embedded
        _embedded = True
        # address="local": a new instance even while a `ray start` head runs on this machine (its
        # address in TMP/ray/ray_current_cluster), which Ray's default would join, then refuse num_cpus
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), logging_level=logging.WARNING,
                 log_to_driver=log_to_driver, _node_ip_address="127.0.0.1")


def actor_cpus(workers: int, requested: float | None = None) -> float:
    """CPUs per actor/worker. Actors hold their CPUs for life, so on a small machine they
    get a fraction, leaving at least half of the CPUs to the read and write tasks that feed
    them (else the pipeline stalls on its resource budget). The share is a quarter of what is
    free when the job starts, so two jobs started at the same moment (both seeing every CPU
    free) still leave half to their tasks: sized on half each, they deadlocked on 2 cores."""
    if requested:
        return requested
    total = float(ray.cluster_resources().get("CPU", 1.0))
    free = min(total, float(ray.available_resources().get("CPU", 0.0)))
    return max(0.1, min(1.0, max(free, IO_TASK_CPUS) / (4.0 * max(1, workers))))
