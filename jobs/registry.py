"""The model registry: versioned model bundles on any fsspec storage.

    REGISTRY/NAME/v{N}/model.aec      the bundle (weights, config, latent prior); never replaced
    REGISTRY/NAME/v{N}/version.json   spec, training metrics, lineage, the bundle's sha256;
                                      written last = committed
    REGISTRY/NAME/aliases.json        {"production": N}

Registering claims a version number by creating its bundle exclusively (``O_EXCL`` locally, a
conditional PUT on S3): two processes registering at once get different versions, and no bundle
is ever overwritten. A claimed number whose ``version.json`` never came (a crash) is skipped.
Loading checks the bundle against the sha256 its ``version.json`` recorded.

A reference is ``NAME`` (production if set, else the latest version), ``NAME@N`` or
``NAME@ALIAS``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aecore.errors import UserError
from cluster.clock import utc_now
from cluster.storage import Location, StorageError, create_exclusive, locked, publish, storage_error

__all__ = ["ModelRegistry", "ModelVersion", "RegistryError"]

_VERSION_DIR = re.compile(r"^v(\d+)$")
BUNDLE = "model.aec"
INFO = "version.json"
ALIASES = "aliases.json"


F = TypeVar("F", bound=Callable[..., Any])


def _storage_calls(fn: F) -> F:
    """Storage failures inside a registry call become one secret-free line."""

    @functools.wraps(fn)
    def wrapper(self: ModelRegistry, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except (RegistryError, StorageError):
            raise
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, OSError | PermissionError) or "botocore" in type(exc).__module__:
                raise storage_error(exc, self.loc.url, "registry", self.loc) from None
            raise

    return wrapper  # type: ignore[return-value]


class RegistryError(UserError, LookupError):
    """A model reference that does not resolve; the message says what exists."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    info: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


class ModelRegistry:
    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.loc = Location.of(url, storage_options)

    def _p(self, *parts: str) -> str:
        return posixpath.join(self.loc.path, *parts)

    @_storage_calls
    def names(self) -> list[str]:
        if not self.loc.fs.exists(self.loc.path):
            return []
        return sorted(posixpath.basename(p.rstrip("/")) for p in self.loc.fs.ls(self.loc.path, detail=False)
                      if not posixpath.basename(p.rstrip("/")).startswith(("_", ".")) and self.loc.fs.isdir(p))

    @_storage_calls
    def versions(self, name: str) -> list[int]:
        if not self.loc.fs.exists(self._p(name)):
            return []
        found = []
        for p in self.loc.fs.ls(self._p(name), detail=False):
            m = _VERSION_DIR.match(posixpath.basename(p.rstrip("/")))
            if m and self.loc.fs.exists(self._p(name, m.group(0), INFO)):
                found.append(int(m.group(1)))
        return sorted(found)

    @_storage_calls
    def aliases(self, name: str) -> dict[str, int]:
        path = self._p(name, ALIASES)
        if not self.loc.fs.exists(path):
            return {}
        try:
            with self.loc.fs.open(path) as f:
                return json.load(f)
        except json.JSONDecodeError:
            raise RegistryError(f"{path} in registry {self.loc.url!r} is not valid JSON; restore it from a backup "
                                "or write {} to clear the aliases") from None

    def _claimed(self, name: str) -> int:
        """The highest version number with a bundle, committed or not."""
        if not self.loc.fs.exists(self._p(name)):
            return 0
        numbers = [int(m.group(1)) for p in self.loc.fs.ls(self._p(name), detail=False)
                   if (m := _VERSION_DIR.match(posixpath.basename(p.rstrip("/"))))]
        return max(numbers, default=0)

    @_storage_calls
    def register(self, name: str, bundle: bytes, info: dict[str, Any]) -> ModelVersion:
        what = f"registry {self.loc.url!r}"
        version = self._claimed(name) + 1
        try:
            while not create_exclusive(self.loc, self._p(name, f"v{version}", BUNDLE), bundle):
                version += 1  # another process claimed it first
            info = {**info, "name": name, "version": version, "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
                    "registered_at": utc_now()}
            # version.json last, published whole: a version without it is not committed and is never listed
            publish(self.loc, self._p(name, f"v{version}", INFO), json.dumps(info, indent=2, sort_keys=True).encode(),
                    what=what)
        except PermissionError:
            raise StorageError(f"registry {self.loc.url!r} is not writable; check the path and credentials") from None
        return ModelVersion(name, version, info)

    @_storage_calls
    def resolve(self, ref: str) -> ModelVersion:
        name, _, tag = ref.partition("@")
        versions = self.versions(name)
        if not versions:
            known = self.names()
            hint = f"; registered models: {', '.join(known)}" if known else "; train one first with `aec train`"
            raise RegistryError(f"model {name!r} is not in the registry {self.loc.url!r}{hint}")
        aliases = self.aliases(name)
        if not tag:
            version = aliases.get("production", versions[-1])
        elif tag.isdigit():
            version = int(tag)
            if version not in versions:
                raise RegistryError(f"model {name!r} has no version {version}; versions: {', '.join(map(str, versions))}")
        elif tag in aliases:
            version = aliases[tag]
        else:
            raise RegistryError(f"model {name!r} has no alias {tag!r}; aliases: {', '.join(aliases) or 'none'} "
                                f"(promote a version with `aec models promote {name} VERSION`)")
        with self.loc.fs.open(self._p(name, f"v{version}", INFO)) as f:
            return ModelVersion(name, version, json.load(f))

    @_storage_calls
    def load(self, ref: str) -> tuple[ModelVersion, bytes]:
        mv = self.resolve(ref)
        bundle = self.loc.fs.cat_file(self._p(mv.name, f"v{mv.version}", BUNDLE))
        recorded = mv.info.get("bundle_sha256")
        if recorded and hashlib.sha256(bundle).hexdigest() != recorded:
            raise RegistryError(f"{mv.ref} in {self.loc.url!r}: its bundle is not the one registered (sha256 differs); "
                                "the registry was modified outside aec — restore the bundle from a backup")
        return mv, bundle

    @_storage_calls
    def promote(self, name: str, version: int, alias: str = "production") -> None:
        if version not in self.versions(name):
            raise RegistryError(f"model {name!r} has no version {version}")
        path = self._p(name, ALIASES)
        with locked(self.loc, path):  # read-modify-write: concurrent promoters one after another
            aliases = {**self.aliases(name), alias: version}
            publish(self.loc, path, json.dumps(aliases, indent=2).encode(), what=f"registry {self.loc.url!r}")
