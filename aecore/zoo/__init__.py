"""The model zoo: pretrained models shipped in the repository, by name.

Each entry is a bundle (``aecore.bundle``: safetensors with the model's name, config and tables)
under ``aecore/zoo/weights/`` plus the rate point it compresses at. A compress spec takes
``model: zoo:NAME`` directly; a train spec starts from one with ``init: zoo:NAME`` (by default, a
new model starts from its modality's default entry). ``aec models zoo`` lists them. How each was
trained (command, data, steps, figures) is in ``docs/zoo.md`` and in the bundle's ``extra``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from aecore.errors import UserError

__all__ = ["ZOO", "ZooEntry", "ZooError", "default_entry", "split_zoo_ref", "zoo_bundle", "zoo_entry"]

WEIGHTS = Path(__file__).parent / "weights"


class ZooError(UserError, LookupError):
    """An unknown zoo name, or weights missing from this installation (one line)."""


@dataclass(frozen=True)
class ZooEntry:
    name: str
    modality: str
    weights: str  # a bundle file under aecore/zoo/weights/
    summary: str
    rate_point: float | None = None  # variable-rate models: the rate point it compresses at
    version: int = 1
    default: bool = False  # the modality's starting point for new models
    #: the efforts at which it joins an exact archive that names no model of its modality (its
    #: learned codecs compete with the classic ones file by file), where it is the default entry
    archive_efforts: tuple[str, ...] = ("max",)

    @property
    def path(self) -> Path:
        return WEIGHTS / self.weights

    @property
    def available(self) -> bool:
        return self.path.is_file()


_IMAGE = "image-hyperprior-small.safetensors"
_IMAGE_SUMMARY = ("mean-scale hyperprior + checkerboard, GDN, N=96/M=128, 5 rate points in one model; "
                  "trained on photos from Debian packages")
_TEXT = "text-causal-fast.safetensors"
_TEXT_CM = "text-cm.safetensors"
_AUDIO = "audio-hyperprior-small.safetensors"
_AUDIO_SUMMARY = ("1-D mean-scale hyperprior + checkerboard, GDN, N=M=64, 16 kHz, 3 rate points in one model; "
                  "trained on recorded voices and game music from Debian packages")
ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry("image-small", "image", _IMAGE, _IMAGE_SUMMARY + " (rate point 3)", rate_point=3.0, default=True),
        *(ZooEntry(f"image-small-q{q}", "image", _IMAGE, _IMAGE_SUMMARY + f" (rate point {q})", rate_point=float(q))
          for q in range(1, 6)),
        ZooEntry("audio-small", "audio", _AUDIO, _AUDIO_SUMMARY + " (rate point 2)", rate_point=2.0, default=True),
        *(ZooEntry(f"audio-small-q{q}", "audio", _AUDIO, _AUDIO_SUMMARY + f" (rate point {q})", rate_point=float(q))
          for q in range(1, 4)),
        ZooEntry("text-fast", "text", _TEXT, "causal byte decoder (8 dilated blocks of 96, 256 bytes back) + latents, "
                 "lossless, with a zstd -19 dictionary fallback; trained on Debian documentation and Django"),
        ZooEntry("text-cm", "text", _TEXT_CM, "text-fast with a context-mixing primer (256 KB) fitted beside it: "
                 "the aec-cm codec models it before each file; fitted on Debian documentation and Django",
                 default=True, archive_efforts=("default", "max")),
    ]
}


def split_zoo_ref(ref: str) -> tuple[str, int | None]:
    """``zoo:NAME`` or ``zoo:NAME@VERSION`` (what a dataset records) -> ``(NAME, VERSION or None)``.
    The one parser of zoo references: compress writes what this reads."""
    name, at, tag = ref.removeprefix("zoo:").partition("@")
    if not at:
        return name, None
    if not tag.isdigit():
        raise ZooError(f"zoo model reference {ref!r}: the version after @ must be a number, e.g. zoo:{name}@1")
    return name, int(tag)


def zoo_entry(ref: str) -> ZooEntry:
    """The entry a zoo reference names (``zoo:NAME``, ``NAME`` or ``zoo:NAME@VERSION``); a version
    must be the one this installation ships."""
    name, version = split_zoo_ref(ref)
    if name not in ZOO:
        near = difflib.get_close_matches(name, ZOO, n=1)
        hint = f"did you mean zoo:{near[0]}? " if near else ""
        raise ZooError(f"no zoo model {name!r}; {hint}`aec models zoo` lists them")
    entry = ZOO[name]
    if version is not None and version != entry.version:
        raise ZooError(f"zoo model {name!r} version {version} is not in this installation (it ships version "
                       f"{entry.version}); install the aec release that wrote the dataset")
    if not entry.available:
        raise ZooError(f"zoo model {name!r} has no weights in this installation ({entry.path}); reinstall aec")
    return entry


def zoo_bundle(name: str) -> bytes:
    return zoo_entry(name).path.read_bytes()


def default_entry(modality: str) -> ZooEntry | None:
    """The modality's default starting point, if its weights ship with this installation."""
    for entry in ZOO.values():
        if entry.modality == modality and entry.default and entry.available:
            return entry
    return None
