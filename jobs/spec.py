"""Job specs: YAML files validated into frozen models, the one source of truth for defaults.

    kind: train | compress        name: job name            modality: image
    input: collection URL/path    output: dataset URL/path (compress)
    registry: model registry URL/path
    model: train -> name to register a new version of; compress -> NAME, NAME@VERSION, NAME@production
    epochs, batch_size, workers, gpus

Relative paths are relative to the directory ``aec`` runs in. Any key can be overridden
on the command line with ``--set key=value`` (values parsed as YAML; ``a.b=v`` for nested).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import aecore  # noqa: F401  - fills the registries
from aecore.archive.route import AUTO
from aecore.errors import UserError
from aecore.registry import MODALITIES, MODELS, REGULARIZERS

__all__ = ["CompressJobSpec", "JobSpec", "SpecError", "TrainJobSpec", "load_spec", "parse_spec"]

_MODEL_REF = re.compile(r"^(zoo:[A-Za-z0-9][A-Za-z0-9_.-]*(@[0-9]+)?"
                        r"|[A-Za-z0-9][A-Za-z0-9_.-]*(@([0-9]+|[A-Za-z][A-Za-z0-9_-]*))?)$")
#: ``init:`` values that are not model references
INIT_NONE, INIT_CONTINUE = "none", "continue"


#: storage_options keys that hold secrets (s3fs: key, secret, token; botocore names; passwords)
_CREDENTIAL = re.compile(r"(^|_)(key|secret|token|password|passwd|credentials?|session_token|access_key_id|"
                         r"secret_access_key|sas_token|account_key)$", re.IGNORECASE)


def _flat_keys(options: Any, prefix: str = "") -> list[str]:
    if not isinstance(options, dict):
        return []
    keys = []
    for k, v in options.items():
        keys.append(str(k))
        keys += _flat_keys(v, f"{prefix}{k}.")
    return keys


class SpecError(UserError, ValueError):
    """A spec problem; the message is one line naming the key and the fix."""


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["train", "compress"]
    name: str = Field(min_length=1)
    modality: str = "image"
    input: str = Field(min_length=1)
    registry: str = ".aec/registry"
    model: str = Field(min_length=1)
    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=32, ge=1)
    workers: int = Field(default=2, ge=1)
    gpus: float = Field(default=0.0, ge=0)
    #: CPUs reserved per Ray Train worker / encoder actor; default: a share that leaves
    #: most of the cluster's CPUs to the read and write tasks (see cluster.runtime.actor_cpus)
    cpus_per_worker: float | None = Field(default=None, gt=0)
    #: passed to fsspec for input, output and registry (e.g. endpoint_url, anon)
    storage_options: dict[str, Any] = Field(default_factory=dict)

    #: keys that hold a location; local ones are resolved against the submitter's directory
    #: when a spec is submitted, so the job finds them from any working directory
    _PATH_KEYS: ClassVar[tuple[str, ...]] = ("input", "registry")

    def with_absolute_paths(self, base: Path) -> JobSpec:
        updates = {}
        for key in self._PATH_KEYS:
            value = getattr(self, key)
            if "://" not in value and not Path(value).is_absolute():
                updates[key] = str((base / value).resolve())
        return self.model_copy(update=updates)

    @field_validator("storage_options")
    @classmethod
    def _no_credentials(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in _flat_keys(v):
            if _CREDENTIAL.search(key):
                raise ValueError(f"{key!r} looks like a credential, and specs never carry credentials (they are "
                                 "uploaded, logged and stored); set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY in "
                                 "the environment, or use an instance profile or a Kubernetes secret")
        return v

    @field_validator("modality")
    @classmethod
    def _known_modality(cls, v: str) -> str:
        if v not in MODALITIES:
            raise ValueError(f"unknown modality {v!r}; use one of: {', '.join(sorted(MODALITIES))}")
        return v


class TrainJobSpec(JobSpec):
    kind: Literal["train"] = "train"
    #: aecore model class; default: the init model's, else the modality's own (image -> image-hyperprior)
    architecture: str | None = None
    #: a size preset of the architecture (its PRESETS); default: the architecture's default_preset
    preset: str | None = None
    #: where training starts: unset -> the modality's zoo model (when the architecture and preset
    #: are its own), `none` (from scratch), `zoo:NAME`, `NAME@VERSION` / `NAME@production` of the
    #: registry, or `continue` (this model's production version if any, else the default) —
    #: what scheduled retraining uses unless its spec says otherwise
    init: str | None = None
    #: optimizer steps (per worker) to train for; epochs repeat until they are spent
    steps: int | None = Field(default=None, ge=1)
    #: Adam's peak learning rate (warmup, hold, linear decay); default: the architecture's own
    learning_rate: float | None = Field(default=None, gt=0)
    #: a regularizer name, a list of names, or {name: weight}; weights default per regularizer
    #: (plain, sparse-l1, sparse-kl, contractive, denoising, variational)
    regularizer: str | list[str] | dict[str, float | None] = "plain"
    #: rate–distortion trade-off: loss = distortion + lmbda * bits per element (pixel); default:
    #: the architecture's own (variable-rate models weight each rate point already: 1.0)
    lmbda: float | None = Field(default=None, ge=0)
    #: random crops taken from each file per epoch
    patches_per_item: int = Field(default=4, ge=1)
    #: side of the training crops; default: the model's own
    patch_size: int | None = Field(default=None, ge=8)
    seed: int = 0
    #: after training: promote the new version to `production` if its held-out quality is at least
    #: production's (measured on the same held-out files) within promotion_tolerance ("if-better"),
    #: always, or never
    promote: Literal["if-better", "always", "never"] = "if-better"
    #: how much worse than production the new version may be and still be promoted, in the units
    #: of the modality's gate metric (image: PSNR dB, audio: SNR dB, text: bits per byte); held
    #: against the best former production too, so it is not spent again by every version
    promotion_tolerance: float = Field(default=0.1, ge=0)

    @field_validator("model")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"{v!r} is not a model name (letters, digits, '_', '.', '-'); "
                             "a train job registers a new version of it")
        return v

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, v: str | None) -> str | None:
        if v is not None and v not in MODELS:
            raise ValueError(f"unknown architecture {v!r}; use one of: {', '.join(sorted(MODELS))}")
        return v

    @field_validator("init")
    @classmethod
    def _init_ref(cls, v: str | None) -> str | None:
        if v is None or v in (INIT_NONE, INIT_CONTINUE) or _MODEL_REF.fullmatch(v):
            return v
        raise ValueError(f"{v!r} is not a starting point; use none, continue, zoo:NAME, NAME@VERSION or NAME@production")

    @model_validator(mode="after")
    def _known_preset(self) -> TrainJobSpec:
        if self.preset is None:
            return self
        arch = self.architecture or MODALITIES[self.modality].default_model
        presets = MODELS[arch].PRESETS
        if self.preset not in presets:
            raise ValueError(f"unknown preset {self.preset!r} for {arch}; use one of: {', '.join(presets)}")
        return self

    @field_validator("regularizer")
    @classmethod
    def _known_regularizers(cls, v: Any) -> Any:
        names = [v] if isinstance(v, str) else list(v)
        for n in names:
            if n not in REGULARIZERS:
                near = difflib.get_close_matches(n, REGULARIZERS, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ValueError(f"unknown regularizer {n!r}{hint}; use one of: {', '.join(sorted(REGULARIZERS))}")
        return v

    def regularizer_weights(self) -> dict[str, float | None]:
        if isinstance(self.regularizer, str):
            return {self.regularizer: None}
        if isinstance(self.regularizer, list):
            return dict.fromkeys(self.regularizer)
        return dict(self.regularizer)


class CompressJobSpec(JobSpec):
    kind: Literal["compress"] = "compress"
    #: `auto` (default): every file under `input`, each routed by its content to image, audio,
    #: text or bytes and archived exactly by the best codec for it; a modality's name: only its files
    modality: str = AUTO
    #: the model of a named modality; with `auto`, optional (the model of its own modality)
    model: str | None = None
    #: auto: a model per modality that joins the classic codecs for files of its kind
    #: (`{image: zoo:image-small, text: NAME@production}`); effort `max` adds each modality's zoo model
    models: dict[str, str] = Field(default_factory=dict)
    #: how many codecs each file tries in an exact archive: fast | default | max
    effort: Literal["fast", "default", "max"] = "default"
    output: str = Field(min_length=1)
    #: the rate point of a variable-rate model (image-hyperprior: 1 .. 5, fractions between;
    #: higher: more bits, better quality); default: the model's own (zoo:NAME-qK entries set K)
    rate_point: float | None = Field(default=None, gt=0)
    #: every how-many-th input (by id hash) is decoded again to measure quality
    quality_every: int = Field(default=8, ge=1)
    #: restore byte-exact; default: true for modality auto (an archive gives back what it took),
    #: else the modality's own (text: true, image: false). ``false`` with auto: photos and sounds
    #: by the smallest lossy codec at the learned model's quality (or exactly, where that is
    #: smaller); text and other files exactly
    lossless: bool | None = None
    #: larger inputs become error rows instead of being read
    max_file_bytes: int = Field(default=512 * 2**20, ge=1)
    #: fail the job (exit 1) when errors / inputs exceeds this; committed rows are kept
    max_error_rate: float | None = Field(default=None, ge=0, le=1)
    #: commit staged parts at least every this many parts or seconds (the unit of resume)
    commit_every: int = Field(default=16, ge=1)
    commit_seconds: float = Field(default=30.0, gt=0)

    _PATH_KEYS: ClassVar[tuple[str, ...]] = ("input", "registry", "output")

    @field_validator("model")
    @classmethod
    def _model_ref(cls, v: str | None) -> str | None:
        if v is not None and not _MODEL_REF.fullmatch(v):
            raise ValueError(f"{v!r} is not a model reference; use NAME, NAME@VERSION, NAME@production or zoo:NAME")
        return v

    @field_validator("models")
    @classmethod
    def _model_refs(cls, v: dict[str, str]) -> dict[str, str]:
        for modality, ref in v.items():
            if modality not in MODALITIES:
                raise ValueError(f"models: unknown modality {modality!r}; use one of: {', '.join(sorted(MODALITIES))}")
            if not isinstance(ref, str) or not _MODEL_REF.fullmatch(ref):
                raise ValueError(f"models.{modality}: {ref!r} is not a model reference; use NAME@VERSION or zoo:NAME")
        return v

    @field_validator("modality")
    @classmethod
    def _known_modality(cls, v: str) -> str:
        if v != AUTO and v not in MODALITIES:
            raise ValueError(f"unknown modality {v!r}; use auto or one of: {', '.join(sorted(MODALITIES))}")
        return v

    @model_validator(mode="after")
    def _fits(self) -> CompressJobSpec:
        if self.modality != AUTO and self.model is None:
            raise ValueError(f"modality {self.modality} needs a model; set model: (e.g. zoo:NAME), or modality: auto")
        if self.models and self.modality != AUTO:
            raise ValueError("models: is for modality auto; a named modality takes one model:")
        return self


_KINDS: dict[str, type[JobSpec]] = {"train": TrainJobSpec, "compress": CompressJobSpec}


def load_spec(path: str | Path, overrides: list[str] | None = None) -> JobSpec:
    """Read, override and validate a spec file; every failure is a one-line :class:`SpecError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"spec {path}: no such file; check the path") from None
    except OSError as exc:
        raise SpecError(f"spec {path}: cannot read it ({exc.strerror}); check its permissions") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"spec {path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_spec(raw, overrides, source=str(path))


def parse_spec(raw: Any, overrides: list[str] | None = None, source: str = "spec") -> JobSpec:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"spec {source}: expected a mapping of keys to values, got {type(raw).__name__}")
    raw = dict(raw)
    for item in overrides or []:
        _apply_override(raw, item, source)
    kind = raw.get("kind")
    if kind is None:
        raise SpecError(f"spec {source}: missing required key 'kind'; set kind: train or kind: compress")
    cls = _KINDS.get(kind)
    if cls is None:
        raise SpecError(f"spec {source}: key 'kind' is {kind!r}; use train or compress")
    for key in raw:
        if key not in cls.model_fields:
            raise SpecError(f"spec {source}: unknown key {key!r}{_nearest(key, cls)}")
    try:
        return cls(**raw)
    except ValidationError as exc:
        raise SpecError(f"spec {source}: {_first_error(exc, cls)}") from None


def _apply_override(raw: dict[str, Any], item: str, source: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SpecError(f"--set {item!r}: expected key=value, e.g. --set epochs=3")
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    *parents, leaf = key.strip().split(".")
    node = raw
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SpecError(f"--set {item!r}: {p!r} is not a mapping in {source}")
    node[leaf] = parsed


def _nearest(key: str, cls: type[JobSpec]) -> str:
    near = difflib.get_close_matches(key, cls.model_fields, n=1, cutoff=0.6)
    if near:
        return f"; did you mean {near[0]!r}?"
    return f"; valid keys for a {cls.model_fields['kind'].default} job: {', '.join(cls.model_fields)}"


def _first_error(exc: ValidationError, cls: type[JobSpec]) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "spec"
    if err["type"] == "missing":
        doc = {"output": " (where a compress job writes its dataset)", "input": " (the collection: a folder, prefix or URL)",
               "model": " (train: name to register; compress: NAME[@VERSION|@production])"}.get(key, "")
        return f"missing required key {key!r}{doc}; add it to the spec or pass --set {key}=..."
    msg = err["msg"].removeprefix("Value error, ")
    got = err.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) and "got" not in msg else ""
    return f"key {key!r}: {msg}{shown}"
