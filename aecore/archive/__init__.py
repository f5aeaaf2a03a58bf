"""Archiving any file exactly, each by the best codec for it: the codec contract, the classic
codecs (bytes and media), the learned codecs behind the same contract, routing by content, and
the per-file choice; the lossy classic codecs a lossy job tries against its learned model
(:mod:`aecore.archive.lossy`). ``decode_payload`` restores any row from its codec id alone."""

from __future__ import annotations

from aecore.archive import classic, cm, cm2, learned, lms, lossy, media, postfilter  # noqa: F401 - registers the codecs
from aecore.archive.choose import EFFORTS, Choice, candidates, choose
from aecore.archive.codec import (
    CLASSIC_MAGIC,
    FILE_CODECS,
    CodecContext,
    CodecUnavailable,
    FileCodec,
    get_file_codec,
    payload_codec,
    register_file_codec,
)
from aecore.archive.dictionary import train_dictionary
from aecore.archive.learned import learned_codec_id
from aecore.archive.route import AUTO, KINDS, route
from aecore.archive.solid import SolidBlocks, block_inner, order_key

__all__ = ["AUTO", "CLASSIC_MAGIC", "EFFORTS", "FILE_CODECS", "KINDS", "Choice", "CodecContext", "CodecUnavailable",
           "FileCodec", "SolidBlocks", "candidates", "choose", "codec_libraries", "decode_payload", "get_file_codec",
           "is_learned", "learned_codec_id", "model_modality", "order_key", "payload_codec", "register_file_codec",
           "route", "train_dictionary"]


def decode_payload(codec_id: str, payload: bytes, ctx: CodecContext, size: int | None = None) -> bytes:
    """The file bytes of a row written by ``codec_id`` (the very bytes where the codec is
    ``exact``; else the file its modality restores from the decoded picture)."""
    return get_file_codec(codec_id).decode(payload, ctx, size)


def codec_libraries() -> dict[str, str]:
    """``codec id -> library and version`` of every codec (the table's properties record them)."""
    return {cid: cls.library() for cid, cls in FILE_CODECS.items()}


def _row_codec(codec_id: str) -> type[FileCodec] | None:
    """The codec class that codes rows of ``codec_id`` (a solid block's rows: its inner codec's)."""
    return FILE_CODECS.get(block_inner(codec_id) or codec_id)


def is_learned(codec_id: str) -> bool:
    """Whether a learned part codes rows of ``codec_id`` (a model, or a classic codec's learned
    post-filter; a solid block's rows by its inner codec): the share learned parts win counts them."""
    cls = _row_codec(codec_id)
    return cls is not None and cls.learned


def model_modality(codec_id: str) -> str | None:
    """The modality whose learned model rows of ``codec_id`` decode with (a solid block's rows by
    its inner codec's); None where no model takes part."""
    cls = _row_codec(codec_id)
    return cls.model_modality if cls is not None and cls.learned else None
