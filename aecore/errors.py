"""The one family of errors a user causes and can fix.

A :class:`UserError` is a mistake in what the user gave (a spec, a name, a path, storage that
cannot be reached, a schedule): ``aec`` prints its message, one line naming the thing and the
fix, and exits 2. Every other exception is a bug and keeps its traceback. The family is defined
here, at the bottom of the import graph, so every layer's errors can join it:

- aecore: :class:`UnknownNameError` (registries, size presets), ``BundleError``, ``ZooError``;
- cluster: ``StorageError``, ``HeadError``;
- jobs: ``SpecError``, ``RegistryError``, ``ClusterError``, ``ScheduleError``, ``QueryError``.
"""

from __future__ import annotations

__all__ = ["UnknownNameError", "UserError"]


class UserError(Exception):
    """A mistake the user can fix; the message is one line naming the thing and the fix."""


class UnknownNameError(UserError, KeyError):
    """A name that is not in one of aecore's registries (model, modality, regularizer, preset)."""

    def __str__(self) -> str:  # KeyError's str() would quote the message
        return str(self.args[0]) if self.args else ""
