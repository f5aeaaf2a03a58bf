"""What a sample carries beside its tensor: a typed record, one class per modality.

The record is what a payload's header stores so decode can restore the file (``pack`` /
``unpack``: image size and bit depth; audio frames, rate, channels and silent runs; text length),
what lossless mode adds on the way (the file, and how a container rebuilds it), and, while a
payload is coded, where the piece at hand sits in the sample. The questions only the header can
answer (the model tensor's extent, the unit a rate is counted in, what the header adds to a
reconstruction) are the record's methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace

import numpy as np

from aecore.containers import Exact

__all__ = ["Exact", "Info"]


@dataclass(frozen=True, eq=False)
class Info(ABC):
    shape: tuple[int, ...]  # the original shape as users know it, e.g. (H, W, C) or (frames, channels)
    bits: int = 8  # bits per exact value (lossless mode)
    file: bytes | None = None  # lossless encode: the input file (``Compressor.load`` keeps it)
    exact: Exact | None = None  # lossless: how the file is rebuilt; None beside a file: stored as it is
    lossless: bool = False  # decode: the payload restores the file byte for byte
    stored: bool = False  # decode: the payload holds the file itself
    offset: int = 0  # the piece being coded: its first position along the last axis
    extent: tuple[int, ...] | None = None  # and its extent (None: the whole sample)

    @property
    @abstractmethod
    def positions(self) -> tuple[int, ...]:
        """Extent of the whole model tensor before padding (e.g. ``(H, W)``)."""

    @abstractmethod
    def rate_unit(self) -> tuple[str, float]:
        """``(unit name, count)`` that bits are divided by, e.g. ``("bpp", H*W)``."""

    @abstractmethod
    def pack(self) -> bytes:
        """The few bytes a payload's header carries so decode can restore the file."""

    @classmethod
    @abstractmethod
    def unpack(cls, data: bytes, version: int) -> tuple[Info, int]:
        """Inverse of :meth:`pack` for a payload of ``version``: ``(info, bytes consumed)``."""

    def finish(self, x_hat: np.ndarray) -> np.ndarray:
        """What the header adds to a lossy reconstruction before it is restored or measured
        (audio: its runs of digital silence); nothing by default."""
        return x_hat

    def piece(self, offset: int, extent: tuple[int, ...]) -> Info:
        """This record, placed on the piece at ``offset`` of ``extent``."""
        return replace(self, offset=offset, extent=tuple(extent))

    def with_exact(self, exact: Exact | None, **changes: object) -> Info:
        """This record with how lossless decode rebuilds the file (and its bit depth)."""
        bits = exact.bits if exact is not None and exact.bits else self.bits
        return replace(self, exact=exact, bits=bits, **changes)

    @property
    def piece_extent(self) -> tuple[int, ...]:
        return self.extent if self.extent is not None else self.positions
