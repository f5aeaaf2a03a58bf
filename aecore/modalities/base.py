"""What a modality is: bytes of one file <-> the tensor a model sees, and back.

Everything that differs between image, audio and text lives behind this interface, so
the Ray pipelines and the CLI stay modality-agnostic.

    file bytes --load--> Sample(x: float32 [C, *spatial], info: the modality's Info record)
    Sample --pad--> model input --g_a--> y --round--> y_hat --g_s--> x_hat
    x_hat --restore(info)--> file bytes

What a payload's header stores (and what only it knows: extents, rate units, silent runs) is the
modality's :class:`~aecore.modalities.info.Info` record; a modality itself converts files, cuts
training crops, restores, codes exact values and measures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aecore.containers import Exact, get_container
from aecore.modalities.info import Info

__all__ = ["Modality", "Sample", "UnreadableInput"]


class UnreadableInput(ValueError):
    """A file the modality cannot decode; the message says why in one line."""


@dataclass(frozen=True)
class Sample:
    """One decoded file: ``x`` in model space plus what restore needs to undo it."""

    x: np.ndarray  # float32, [C, *spatial], values in [0, 1]
    info: Info | None = None  # None: a bare tensor (a piece being padded)

    @property
    def shape(self) -> tuple[int, ...]:
        """The original shape as users know it (e.g. ``(H, W, C)`` for an image)."""
        return tuple(self.info.shape)


class Modality(ABC):
    """Converts one file to a model tensor and back. Subclasses register by name."""

    name: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]]
    default_model: ClassVar[str]
    output_suffix: ClassVar[str]
    #: channels and spatial/temporal dimensions of the model tensor ``x``
    channels: ClassVar[int]
    spatial_dims: ClassVar[int]
    #: the record a sample carries and a payload's header stores
    info_type: ClassVar[type[Info]]
    #: restore byte-exact unless a job says otherwise
    lossless_default: ClassVar[bool] = False
    #: a lossy job may code it lossy (a lossy archive codes the files of such modalities lossy)
    lossy: ClassVar[bool] = True
    #: the most values (channels x positions) a payload may claim: decode refuses more before
    #: allocating anything (a decompression-bomb guard)
    max_elements: ClassVar[int] = 2**31
    #: the held-out metric a new model version must match to be promoted, and its direction
    #: (+1: higher is better, -1: lower is better)
    gate_metric: ClassVar[tuple[str, int]]
    #: its quality is its rate (lossless: every model restores the same bytes), so of two models
    #: the one that codes held-out files smaller is simply better (``cluster.train.keep_better``)
    rate_is_quality: ClassVar[bool] = False

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
    def restore(self, x_hat: np.ndarray, info: Info) -> bytes:
        """Model output (padded) -> file bytes of the original shape."""

    @abstractmethod
    def quality(self, x: np.ndarray, x_hat: np.ndarray) -> dict[str, float]:
        """Quality metrics of a reconstruction, both cropped to the original extent."""

    #: file containers lossless mode rebuilds byte for byte (``aecore.containers``), tried in order
    containers: ClassVar[tuple[str, ...]] = ()

    def exact(self, data: bytes, sample: Sample) -> Exact | None:
        """How lossless decode rebuilds ``data`` byte for byte from the exact values, or None:
        no container rebuilds this file, so it is stored as it is."""
        known = self.exact_values(sample) if self.containers else None
        for name in self.containers:
            container = get_container(name)
            try:
                parsed = container.parse(data, known)
                if parsed is None:
                    continue
                values = parsed.values if parsed.values is not None else known
                if self.accepts(parsed, sample) and container.rebuilds(data, values, parsed.recipe):
                    return parsed
            except Exception:  # noqa: BLE001 - a file a container misreads is stored, never lost
                continue
        return None

    def exact_values(self, sample: Sample) -> np.ndarray | None:
        """The exact values as the containers lay them out, where ``load`` already decoded them."""
        return None

    def accepts(self, parsed: Exact, sample: Sample) -> bool:
        """Whether a container's values describe the same signal ``load`` decoded."""
        return True

    def lossless_view(self, x_hat: np.ndarray, info: Info) -> np.ndarray:
        """What lossless coding predicts the piece's :meth:`symbols` from: x_hat cropped to the
        piece (``info.extent``) and laid out like the symbols, in [0, 1] of the value range."""
        ext = tuple(slice(0, e) for e in info.piece_extent)
        return x_hat[(slice(None), *ext)]

    def symbols(self, x: np.ndarray, info: Info) -> np.ndarray:
        """The exact values (levels ``0 .. 2**bits - 1``) of one piece (``x``; ``info.offset``
        and ``info.extent`` place it in the file) lossless mode restores, as a flat int array."""
        raise NotImplementedError(f"lossless mode is not available for {self.name}")

    def from_symbols(self, symbols: np.ndarray, info: Info) -> bytes:
        """File bytes from the exact values of the whole file: the container rebuilds them
        where ``info.exact`` names one, else the modality writes its canonical file."""
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
