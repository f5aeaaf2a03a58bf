"""Ray Train's torch process group kept on loopback when the whole cluster is (the embedded
default, `aec cluster up`).

Ray Train's own torch backend starts torch.distributed's TCP store on rank 0, and the store's
server listens on every interface (``*:port``, no authentication), whatever ``MASTER_ADDR`` says.
Here rank 0 binds a socket to 127.0.0.1 itself and hands it to the store
(``TCPStore(master_listen_fd=...)``); the other ranks connect there, and gloo's pairs bind to the
loopback interface (``GLOO_SOCKET_IFNAME=lo``). A cluster with any node off loopback (KubeRay)
keeps Ray's backend unchanged; so does a GPU job (NCCL).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train.torch import TorchConfig
from ray.train.torch.config import _TorchBackend

__all__ = ["LoopbackTorchConfig", "loopback_cluster"]

_LISTENER: socket.socket | None = None  # rank 0's listening socket, held by its worker process


def loopback_cluster() -> bool:
    """Every live node of the connected Ray cluster is on a loopback address."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    try:
        return bool(nodes) and all(ipaddress.ip_address(n["NodeManagerAddress"]).is_loopback for n in nodes)
    except (KeyError, ValueError):
        return False


def _listen() -> int:
    global _LISTENER
    if _LISTENER is not None:
        _LISTENER.close()
    _LISTENER = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _LISTENER.bind(("127.0.0.1", 0))
    _LISTENER.listen(128)
    return _LISTENER.getsockname()[1]


def _join(world_rank: int, world_size: int, port: int, timeout_s: int) -> None:
    import torch.distributed as dist
    from ray.train.torch.config import _set_torch_distributed_env_vars

    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    _set_torch_distributed_env_vars()
    timeout = timedelta(seconds=timeout_s)
    fd = _LISTENER.fileno() if world_rank == 0 and _LISTENER is not None else None
    store = dist.TCPStore("127.0.0.1", port, world_size, world_rank == 0, timeout, master_listen_fd=fd)
    dist.init_process_group(backend="gloo", store=store, rank=world_rank, world_size=world_size, timeout=timeout)


class _LoopbackBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config) -> None:  # noqa: ANN001 - Ray's Backend hook
        if worker_group.get_resources_per_worker().get("GPU", 0):
            super().on_start(worker_group, backend_config)
            return
        port = worker_group.execute_single(0, _listen)
        ray.get([worker_group.execute_single_async(i, _join, world_rank=i, world_size=len(worker_group), port=port,
                                                   timeout_s=backend_config.timeout_s)
                 for i in range(len(worker_group))])


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """``TorchConfig`` whose process group listens on 127.0.0.1 only (gloo, CPU workers)."""

    @property
    def backend_cls(self):  # noqa: ANN201 - Ray's BackendConfig API
        return _LoopbackBackend
