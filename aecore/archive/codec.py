"""The codec contract: one small class per codec, found by its id, learned and classic alike.

As numcodecs' codecs: a ``codec_id``, ``encode(data, ctx) -> payload | None`` (None: this codec
does not apply to this file), ``decode(payload, ctx) -> data``; a registry by id, so a table names
the codec that wrote each row and a reader rebuilds it from that name alone. An ``exact`` codec
gives back the very bytes (``decode(encode(x)) == x``, checked at encode time by
:mod:`aecore.archive.choose`); a lossy one (:mod:`aecore.archive.lossy`) the picture it kept.

A classic payload starts with its codec's id (``0xAC | u8 n | id``), so a payload alone says
how to decode it; a learned payload keeps the learned format (its first byte is a payload
version, never ``0xAC``; :mod:`aecore.payload`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from aecore.errors import UserError

__all__ = ["CLASSIC_MAGIC", "FILE_CODECS", "CodecContext", "CodecUnavailable", "FileCodec", "classic_payload",
           "get_file_codec", "payload_codec", "register_file_codec", "split_classic"]

CLASSIC_MAGIC = 0xAC
FILE_CODECS: dict[str, type[FileCodec]] = {}
T = TypeVar("T", bound="type[FileCodec]")


class CodecUnavailable(UserError, LookupError):
    """A row names a codec this installation does not have (one line, with the fix)."""


@dataclass
class CodecContext:
    """What codecs share in one job: the collection's zstd dictionary and the learned
    compressors by modality (built lazily from their bundles)."""

    zstd_dictionary: bytes | None = None
    compressors: dict[str, Any] = field(default_factory=dict)  # modality -> aecore.Compressor (lossless)
    effort: str = "default"
    #: solid blocks a decode has met (aecore.archive.solid.SolidBlocks), fetched by holder id
    blocks: Any = None


class FileCodec(ABC):
    codec_id: ClassVar[str]
    #: the kinds of file it is tried on ("*": every kind; see aecore.archive.route)
    kinds: ClassVar[tuple[str, ...]] = ("*",)
    #: the efforts that try it
    efforts: ClassVar[tuple[str, ...]] = ("fast", "default", "max")
    learned: ClassVar[bool] = False
    #: the modality whose model (the archive's, by modality) a learned codec codes with
    model_modality: ClassVar[str | None] = None
    #: its encoder decodes the payload again and compares (the costly learned decoders do); the
    #: others are checked by :func:`aecore.archive.choose.choose`, the winner only
    checked_at_encode: ClassVar[bool] = False
    #: decode gives back the very bytes (an exact archive's candidates); False: a lossy codec
    #: (aecore.archive.lossy), whose decode gives back the picture the modality restores
    exact: ClassVar[bool] = True
    #: a general-purpose codec: the files it wins may be coded together in a solid block instead
    solid: ClassVar[bool] = False

    @abstractmethod
    def encode(self, data: bytes, ctx: CodecContext) -> bytes | None:
        """The payload of ``data``, or None when this codec does not apply to it."""

    @abstractmethod
    def decode(self, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
        """The file bytes of a payload this codec wrote; ``size`` (the row's recorded bytes)
        bounds what a decoder gives back."""

    @classmethod
    def library(cls) -> str:
        """``name version`` of the library it relies on (recorded in the table's properties)."""
        return "aec"

    def tried(self, kind: str, effort: str) -> bool:
        return ("*" in self.kinds or kind in self.kinds) and effort in self.efforts


def register_file_codec(codec_id: str) -> Callable[[T], T]:
    def decorator(cls: T) -> T:
        if codec_id in FILE_CODECS:
            raise ValueError(f"codec {codec_id!r} is registered twice")
        cls.codec_id = codec_id
        FILE_CODECS[codec_id] = cls
        return cls

    return decorator


def get_file_codec(codec_id: str) -> FileCodec:
    try:
        return FILE_CODECS[codec_id]()
    except KeyError:
        raise CodecUnavailable(f"codec {codec_id!r} is not in this installation of aec; install the aec release "
                               "that wrote the archive") from None


def classic_payload(codec_id: str, stream: bytes) -> bytes:
    name = codec_id.encode()
    return bytes([CLASSIC_MAGIC, len(name)]) + name + stream


def split_classic(payload: bytes) -> tuple[str, bytes] | None:
    """``(codec id, stream)`` of a classic payload; None for a learned one."""
    if len(payload) < 2 or payload[0] != CLASSIC_MAGIC or len(payload) < 2 + payload[1]:
        return None
    n = payload[1]
    return payload[2 : 2 + n].decode("ascii", errors="replace"), payload[2 + n :]


def payload_codec(payload: bytes) -> str | None:
    """The classic codec a payload names, or None (a learned payload)."""
    found = split_classic(payload)
    return found[0] if found else None
