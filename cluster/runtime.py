"""Connecting to Ray: the embedded default (a local instance) or a cluster address."""

from __future__ import annotations

import logging
import os

import ray

__all__ = ["ensure_ray", "actor_cpus"]


def ensure_ray(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = True) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local instance."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        # Storage endpoints and credentials travel with the job, never in a spec or a log.
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=log_to_driver,
                 runtime_env={"env_vars": env} if env else None)
    else:
        # The embedded default stays on loopback: nothing of it is reachable from outside.
        ray.init(num_cpus=num_cpus or os.cpu_count(), logging_level=logging.WARNING, log_to_driver=log_to_driver,
                 _node_ip_address="127.0.0.1")


def actor_cpus(workers: int, requested: float | None = None) -> float:
    """CPUs per actor/worker. Actors hold their CPUs for life, so on a small machine they
    get a fraction, leaving at least half of the CPUs to the read and write tasks that feed
    them (else the pipeline stalls on its resource budget)."""
    if requested:
        return requested
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(0.1, min(1.0, total / (2.0 * max(1, workers))))
