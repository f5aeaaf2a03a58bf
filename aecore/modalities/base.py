"""What a modality is: bytes of one file <-> the tensor a model sees, and back.

Everything that differs between image, audio and text lives behind this interface, so
the Ray pipelines and the CLI stay modality-agnostic.

    file bytes --load--> Sample(x: float32 [C, *spatial], info)
    Sample --pad--> model input --g_a--> y --round--> y_hat --g_s--> x_hat
    x_hat --restore(info)--> file bytes
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from aecore.containers import get_container

__all__ = ["Modality", "Sample", "UnreadableInput"]


class UnreadableInput(ValueError):
    """A file the modality cannot decode; the message says why in one line."""


@dataclass(frozen=True)
class Sample:
    """One decoded file: ``x`` in model space plus what restore needs to undo it."""

    x: np.ndarray  # float32, [C, *spatial], values in [0, 1]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """The original shape as users know it (e.g. ``(H, W, C)`` for an image)."""
        return tuple(self.info["shape"])


class Modality(ABC):
    """Converts one file to a model tensor and back. Subclasses register by name."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    output_suffix: ClassVar[str]
    #: channels and spatial/temporal dimensions of the model tensor ``x``
    channels: ClassVar[int]
    spatial_dims: ClassVar[int]
    #: restore byte-exact unless a job says otherwise
    lossless_default: ClassVar[bool] = False
    #: the most values (channels x positions) a payload may claim: decode refuses more before
    #: allocating anything (a decompression-bomb guard)
    max_elements: ClassVar[int] = 2**31
    #: the held-out metric a new model version must match to be promoted, and its direction
    #: (+1: higher is better, -1: lower is better)
    gate_metric: ClassVar[tuple[str, int]]

    @abstractmethod
    def load(self, data: bytes) -> Sample:
        """Decode file bytes; raise :class:`UnreadableInput` with a one-line reason."""

    @abstractmethod
    def training_patches(self, sample: Sample, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` random fixed-size crops ``[count, C, *size]`` for training."""

    @abstractmethod
    def thumbnail(self, sample: Sample, size: int) -> np.ndarray:
        """The sample resized to the model's native size, for the fixed-size query latent."""

    @abstractmethod
    def pad(self, sample: Sample, multiple: int) -> np.ndarray:
        """``x`` padded so every spatial dimension is a multiple of ``multiple``."""

    @abstractmethod
    def extent(self, info: dict[str, Any]) -> tuple[int, ...]:
        """Spatial/temporal extent of the model tensor before padding (e.g. ``(H, W)``)."""

    @abstractmethod
    def pack_info(self, info: dict[str, Any]) -> bytes:
        """The few bytes of ``info`` a payload carries so decode can restore the file."""

    @abstractmethod
    def unpack_info(self, data: bytes, version: int) -> tuple[dict[str, Any], int]:
        """Inverse of :meth:`pack_info` for a payload of ``version``: ``(info, bytes consumed)``."""

    def finish(self, x_hat: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """What the payload's info adds to a lossy reconstruction before it is restored or
        measured (audio: its runs of digital silence); nothing by default."""
        return x_hat

    @abstractmethod
    def restore(self, x_hat: np.ndarray, info: dict[str, Any]) -> bytes:
        """Model output (padded) -> file bytes of the original shape."""

    @abstractmethod
    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        """Quality metrics of a reconstruction, both cropped to the original extent."""

    #: file containers lossless mode rebuilds byte for byte (``aecore.containers``), tried in order
    containers: ClassVar[tuple[str, ...]] = ()

    def exact(self, data: bytes, sample: Sample) -> dict[str, Any] | None:
        """Info entries that let lossless decode rebuild ``data`` byte for byte from the exact
        values (``container``, ``recipe``, ``bits``, and ``values`` where the container decoded
        them itself), or None: no container rebuilds this file, so it is stored as it is."""
        known = self.exact_values(sample) if self.containers else None
        for name in self.containers:
            container = get_container(name)
            try:
                parsed = container.parse(data, known)
                if parsed is None:
                    continue
                values = parsed.get("values", known)
                if self.accepts(parsed, sample) and container.rebuilds(data, values, parsed["recipe"]):
                    return {"container": name, **parsed}
            except Exception:  # noqa: BLE001 - a file a container misreads is stored, never lost
                continue
        return None

    def exact_values(self, sample: Sample) -> np.ndarray | None:
        """The exact values as the containers lay them out, where ``load`` already decoded them."""
        return None

    def accepts(self, parsed: dict[str, Any], sample: Sample) -> bool:
        """Whether a container's values describe the same signal ``load`` decoded."""
        return True

    def lossless_view(self, x_hat: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """What lossless coding predicts the piece's :meth:`symbols` from: x_hat cropped to the
        piece (``info["extent"]``) and laid out like the symbols, in [0, 1] of the value range."""
        ext = tuple(slice(0, e) for e in info.get("extent", self.extent(info)))
        return x_hat[(slice(None), *ext)]

    def symbols(self, x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The exact values (levels ``0 .. 2**bits - 1``) of one piece (``x``; ``info["offset"]``
        and ``info["extent"]`` place it in the file) lossless mode restores, as a flat int array."""
        raise NotImplementedError(f"lossless mode is not available for {self.name}")

    def from_symbols(self, symbols: np.ndarray, info: dict[str, Any]) -> bytes:
        """File bytes from the exact values of the whole file: the container rebuilds them
        where ``info`` names one, else the modality writes its canonical file."""
        raise NotImplementedError(f"lossless mode is not available for {self.name}")

    def classic_codecs(self, sample: Sample, lossless: bool = False) -> list[tuple[str, bytes, np.ndarray]]:
        """What a user would use instead: ``(codec, its file bytes, decoded x)`` at a few
        settings, for the reference points of a job's report; with ``lossless``, the lossless
        codecs a user would archive these files with."""
        return []

    def preview(self, sample: Sample, x_hat: np.ndarray, reference: tuple[str, np.ndarray] | None = None
                ) -> dict[str, Any]:
        """Original beside reconstruction (and beside ``reference``, a classic codec's decode
        ``(label, x)`` at about the same rate), for a person: ``{"kind": "image" | "spectrogram"
        | "text", "panels": [(title, what to draw), ...]}``, cropped to the original extent."""
        return {"kind": "none", "panels": []}

    @abstractmethod
    def rate_unit(self, info: dict[str, Any]) -> tuple[str, float]:
        """``(unit name, count)`` that bits are divided by, e.g. ``("bpp", H*W)``."""
