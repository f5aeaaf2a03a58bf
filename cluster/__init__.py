"""cluster: Ray Train training, Ray Data encode/decode pipelines, storage, metrics.

Two settings Ray reads when it is imported (or when its processes start) are made here, before
any module of this package imports ray:

- ``RAY_AUTH_MODE=token`` when joining a cluster (``RAY_ADDRESS``) with a token at hand: a
  token-protected cluster refuses clients that decide this after importing ray;
- the embedded default (no ``RAY_ADDRESS``), and a client of a head on this machine's loopback
  (``RAY_ADDRESS=127.0.0.1:PORT``, as `aec cluster up` starts it), stay on loopback: Ray's
  single-machine mode (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) keeps the node address, agents
  and metrics endpoint on 127.0.0.1; without it Ray rewrites 127.0.0.1 to the machine's address
  and never reaches the head.
"""

import os as _os
from pathlib import Path as _Path


def _loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


if _os.environ.get("RAY_ADDRESS"):
    if _loopback(_os.environ["RAY_ADDRESS"]):
        _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    _token = _os.environ.get("RAY_AUTH_TOKEN") or any(
        p and _Path(p).is_file() for p in (_os.environ.get("RAY_AUTH_TOKEN_PATH"), _Path.home() / ".ray" / "auth_token"))
    if _token:
        _os.environ.setdefault("RAY_AUTH_MODE", "token")
else:
    _os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
