"""Name -> class registries, filled by decorators (as CompressAI's ``register_model``).

``cluster`` and ``jobs`` find modalities, models and regularizers here by the names a
spec uses; no code outside ``aecore`` branches on a modality name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

from aecore.errors import UnknownNameError

__all__ = [
    "CONTAINERS",
    "MODALITIES",
    "MODELS",
    "REGULARIZERS",
    "register_container",
    "register_modality",
    "register_model",
    "register_regularizer",
    "lookup",
]

T = TypeVar("T")

MODALITIES: dict[str, type] = {}
MODELS: dict[str, type] = {}
REGULARIZERS: dict[str, type] = {}
CONTAINERS: dict[str, type] = {}


def _register(table: dict[str, type], name: str) -> Callable[[type[T]], type[T]]:
    def decorator(cls: type[T]) -> type[T]:
        if name in table:
            raise ValueError(f"{name!r} is registered twice ({table[name].__name__}, {cls.__name__})")
        table[name] = cls
        return cls

    return decorator


def register_modality(name: str) -> Callable[[type[T]], type[T]]:
    return _register(MODALITIES, name)


def register_model(name: str) -> Callable[[type[T]], type[T]]:
    return _register(MODELS, name)


def register_container(name: str) -> Callable[[type[T]], type[T]]:
    return _register(CONTAINERS, name)


def register_regularizer(name: str) -> Callable[[type[T]], type[T]]:
    return _register(REGULARIZERS, name)


def lookup(table: dict[str, type], name: str, what: str) -> type:
    """Return ``table[name]`` or raise a one-line error naming the nearest valid name."""
    try:
        return table[name]
    except KeyError:
        near = difflib.get_close_matches(name, table, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise UnknownNameError(f"unknown {what} {name!r}{hint} (known: {', '.join(sorted(table))})") from None
