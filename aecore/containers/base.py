"""What a container is: file bytes <-> (exact values, recipe), byte for byte."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

__all__ = ["CONTAINERS", "Container", "get_container", "register_container"]

T = TypeVar("T")
CONTAINERS: dict[str, type] = {}


def register_container(name: str) -> Callable[[type[T]], type[T]]:
    def decorator(cls: type[T]) -> type[T]:
        CONTAINERS[name] = cls
        return cls

    return decorator


def get_container(name: str) -> Container:
    if name not in CONTAINERS:
        raise ValueError(f"payload names container {name!r}, which this aec does not know; decode with the aec that wrote it")
    return CONTAINERS[name]()


class Container(ABC):
    name: ClassVar[str]

    @abstractmethod
    def parse(self, data: bytes, values: np.ndarray | None = None) -> dict[str, Any] | None:
        """The recipe that rebuilds ``data`` from its exact values, as info entries
        (``{"recipe": bytes, "bits": int, ...}``), or None when this file is not one this
        container can rebuild exactly. ``values`` are the exact values where the modality
        already decoded them (pixels); containers that decode their own (PCM) return them."""

    @abstractmethod
    def describe(self, recipe: bytes) -> dict[str, Any]:
        """The info entries decode needs before it decodes the values (e.g. ``bits``)."""

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
