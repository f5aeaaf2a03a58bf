"""What a container is: file bytes <-> (exact values, recipe), byte for byte."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from aecore.registry import CONTAINERS, lookup, register_container

__all__ = ["CONTAINERS", "Container", "Exact", "get_container", "register_container"]


@dataclass(frozen=True, eq=False)
class Exact:
    """How lossless decode rebuilds a file byte for byte from its exact values."""

    container: str = ""  # the container that rebuilds it; "": the modality writes its canonical file
    recipe: bytes = b""  # what the container needs beside the values (headers, deflate settings, ...)
    bits: int | None = None  # bits per value the file stores
    values: np.ndarray | None = None  # the values, where the container decoded them itself (PCM)


def get_container(name: str) -> Container:
    try:
        return lookup(CONTAINERS, name, "container")()
    except KeyError as exc:  # a payload from a newer aec
        raise ValueError(f"{exc.args[0]}; decode with the aec that wrote the payload") from None


class Container(ABC):
    name: ClassVar[str]

    @abstractmethod
    def parse(self, data: bytes, values: np.ndarray | None = None) -> Exact | None:
        """The recipe that rebuilds ``data`` from its exact values, or None when this file is not
        one this container can rebuild exactly. ``values`` are the exact values where the
        modality already decoded them (pixels); containers that decode their own (PCM) return them."""

    @abstractmethod
    def bits(self, recipe: bytes) -> int:
        """Bits per value of the file a recipe rebuilds (decode needs them before the values)."""

    @abstractmethod
    def build(self, values: np.ndarray, recipe: bytes) -> bytes:
        """The file bytes, identical to the parsed file."""

    def rebuilds(self, data: bytes, values: np.ndarray, recipe: bytes) -> bool:
        """Every recipe is checked once at encode time: a file this container would rebuild
        differently is stored another way, never restored wrong."""
        try:
            return self.build(values, recipe) == data
        except (ValueError, IndexError, KeyError):
            return False
