"""Which model a job uses: registry versions and zoo models behind one reference syntax.

    zoo:NAME                 a model shipped with aec (``aec models zoo``)
    NAME, NAME@N, NAME@ALIAS a version in the job's registry

and where a train job starts (``init:``): the modality's zoo model by default, ``none``,
``continue`` (the model's production version, else the default), or any reference above.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aecore import read_bundle
from aecore.bundle import bundle_sha256
from aecore.registry import MODALITIES, MODELS
from aecore.zoo import ZooError, default_entry, zoo_entry
from jobs.registry import ModelRegistry, ModelVersion, RegistryError
from jobs.spec import INIT_CONTINUE, INIT_NONE, TrainJobSpec

_REF = re.compile(r"(zoo:)?[A-Za-z0-9][A-Za-z0-9_.-]*(@[A-Za-z0-9_-]+)?")
__all__ = ["StartingPoint", "dataset_model", "dataset_models", "load_model", "starting_point"]


def _dataset_registry(metadata: dict[str, Any], registry: str | None, dataset: str = "") -> ModelRegistry:
    """``registry`` if given; else the registry the dataset records only if it is a local path (a
    dataset is untrusted: a URL in it is never fetched); else the default registry."""
    if not registry:
        recorded = str(metadata.get("registry") or "")
        # an absolute local path only: a relative one (or one inside the dataset) would be a
        # registry shipped with the data, choosing its own model
        trusted = recorded.startswith("/") and "://" not in recorded and not _inside(recorded, dataset)
        registry = recorded if trusted else TrainJobSpec.model_fields["registry"].default
    return ModelRegistry(registry)


def _inside(path: str, dataset: str) -> bool:
    import os

    if "://" in dataset:
        return False
    real, root = os.path.realpath(path), os.path.realpath(dataset)
    return real == root or real.startswith(root.rstrip("/") + "/")


def _checked(ref: str, expected: str | None, registry: ModelRegistry, dataset: str) -> tuple[ModelVersion, bytes]:
    mv, bundle = load_model(ref, registry)
    if expected and bundle_sha256(bundle) != expected:
        raise RegistryError(f"{mv.ref} in this registry is not the bundle {dataset} was encoded with (sha256 "
                            f"{expected[:12]}…); pass --registry with the registry that encoded it")
    return mv, bundle


def dataset_model(metadata: dict[str, Any], dataset: str, registry: str | None = None) -> tuple[ModelVersion, bytes]:
    """The model a single-model dataset was encoded with; its bundle must be the one it records."""
    return _checked(metadata["model_ref"], metadata.get("bundle_sha256"), _dataset_registry(metadata, registry, dataset),
                    dataset)


def dataset_models(metadata: dict[str, Any], dataset: str, registry: str | None = None) -> tuple[str, dict[str, bytes]]:
    """``(what to call them, bundle by modality)``: every model a dataset's rows may need — an
    exact archive's models by modality (none: classic codecs only), or a dataset's one model."""
    if "models" in metadata:
        reg = _dataset_registry(metadata, registry, dataset)
        bundles = {modality: _checked(m["ref"], m.get("bundle_sha256"), reg, dataset)[1]
                   for modality, m in (metadata.get("models") or {}).items()}
        return metadata.get("model_ref") or "none", bundles
    mv, bundle = dataset_model(metadata, dataset, registry)
    return mv.ref, {read_bundle(bundle)["modality"]: bundle}


def load_model(ref: str, registry: ModelRegistry) -> tuple[ModelVersion, bytes]:
    """``(version record, bundle)`` of a reference; zoo models carry their rate point in ``info``.
    Every reference a dataset records (``ModelVersion.ref``: ``zoo:NAME@1``, ``NAME@3``) loads here:
    compress and decode go through this one function."""
    if not _REF.fullmatch(ref):  # a dataset's record is untrusted: no path tricks into the registry
        raise RegistryError(f"model reference {ref!r} is not NAME@VERSION or zoo:NAME; the dataset is damaged")
    if ref.startswith("zoo:"):
        try:
            entry = zoo_entry(ref)
        except ZooError as exc:
            raise RegistryError(str(exc)) from None
        info = {"zoo": entry.name, "rate_point": entry.rate_point, "summary": entry.summary}
        return ModelVersion(f"zoo:{entry.name}", entry.version, info), entry.path.read_bytes()
    return registry.load(ref)


@dataclass(frozen=True)
class StartingPoint:
    ref: str | None  # None: from scratch
    bundle: bytes | None
    architecture: str
    preset: str | None


def starting_point(job: TrainJobSpec, registry: ModelRegistry) -> StartingPoint:
    """Resolve ``init`` (and with it the architecture) for a train job."""
    arch = job.architecture or MODALITIES[job.modality].default_model
    init = job.init
    if init == INIT_CONTINUE:
        production = registry.aliases(job.model).get("production") if registry.versions(job.model) else None
        init = f"{job.model}@{production}" if production is not None else None
    if init is None:  # the modality's zoo model, when the job asks for nothing it does not have
        entry = default_entry(job.modality)
        same = entry is not None and read_bundle(entry.path.read_bytes())["model"] == arch
        init = f"zoo:{entry.name}" if same and job.preset is None else INIT_NONE
    if init == INIT_NONE:
        return StartingPoint(None, None, arch, job.preset or MODELS[arch].default_preset)
    mv, bundle = load_model(init, registry)
    header = read_bundle(bundle)
    if header["modality"] != job.modality:
        raise RegistryError(f"init model {mv.ref} is a {header['modality']} model, not {job.modality}; fix `init`")
    if job.architecture and header["model"] != job.architecture:
        raise RegistryError(f"init model {mv.ref} is a {header['model']}, not {job.architecture}; "
                            "drop `architecture` or set init: none")
    return StartingPoint(mv.ref, bundle, header["model"], None)
