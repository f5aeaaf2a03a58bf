"""Solid blocks: many files coded as one stream, as 7-Zip and ``tar | xz`` do, kept only where
they beat the files coded one by one.

File by file, a codec never sees what one file shares with the next (a ``.py`` and its
``.pyc``, a hundred shared libraries built by one compiler). Within one encoder batch, the files
a general-purpose codec won (``FileCodec.solid``) are ordered so that alike files sit together
(:func:`order_key`: by extension, each compiled ``__pycache__/*.pyc`` right after its source),
split by family (x86 executables apart, for the branch filter), and each family is coded as one
stream by the solid candidates of the effort. A block is kept only when it is smaller than the
sum of its members' best payloads; otherwise every file keeps its own.

    files of a batch -> [per-file best] -> families in order -> concatenation -> xz (x86: xz-x86) / cm2
                     -> smaller than the members' payloads summed ? block : files alone

A block's payload sits in the row of its first member (the *holder*); every member's row names
the holder (``solid``) and where its bytes start in the decoded block (``offset``). The payload
is ``0xAC | "solid" | u64 total | the inner codec's own payload``; a decode refuses a block
that claims more than ``SOLID_MAX_BYTES`` and checks each member's sha256.
"""

from __future__ import annotations

import hashlib
import posixpath
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aecore.archive.classic import x86_executable
from aecore.archive.codec import CodecContext, classic_payload, get_file_codec, split_classic

__all__ = ["SOLID_MAX_BYTES", "Block", "Member", "SolidBlocks", "block_inner", "member_bytes", "order_key", "pack",
           "unpack"]

#: the most a block may hold decoded (an encoder batch holds at most 64 MiB)
SOLID_MAX_BYTES = 256 * 2**20
SOLID_ID = "solid"
_TOTAL = struct.Struct("<Q")
#: the inner codecs tried on a family's stream, by effort (x86 executables: xz-x86 in place of xz);
#: the context-mixing coder after the text model's primer (``aec-cm``) where the archive has one,
#: else alone (``cm2``)
_INNER = {"fast": ("zstd",), "default": ("xz", "aec-cm", "cm2"), "max": ("xz", "aec-cm", "cm2", "ppmd")}
_INSTEAD = {"cm2": "aec-cm"}  # not tried where the codec it names gave a payload
#: a file its own codec shrinks by under 3 % joins a block only when small (a duplicate, a header)
_INCOMPRESSIBLE, _SMALL = 0.97, 65536


def block_inner(codec_id: str) -> str | None:
    """The inner codec of a block's rows (``solid-cm2`` -> ``cm2``); None for a file coded alone."""
    return codec_id.removeprefix(f"{SOLID_ID}-") if codec_id.startswith(f"{SOLID_ID}-") else None


def order_key(key: str) -> tuple[str, str, int]:
    """Where a file goes in a solid stream: alike files next to each other (by extension, then
    path), a compiled ``__pycache__/NAME.*.pyc`` right after ``NAME.py`` (it repeats the source's
    names and strings)."""
    folder, name = posixpath.split(key)
    if posixpath.basename(folder) == "__pycache__" and name.endswith(".pyc"):
        return ".py", posixpath.join(posixpath.dirname(folder), name.split(".", 1)[0]), 1
    stem, ext = posixpath.splitext(key)
    return ext.lower(), stem, 0


@dataclass(frozen=True)
class Member:
    """A file that may join a block: its index in the batch, key, bytes and its best payload's size."""

    index: int
    key: str
    data: bytes
    alone: int


@dataclass(frozen=True)
class Block:
    codec: str  # "solid-<inner codec>": what every member row's codec column says
    payload: bytes  # held by members[0]
    members: tuple[int, ...]  # batch indices, in stream order
    offsets: tuple[int, ...]


def eligible(data: bytes, payload: int) -> bool:
    return payload < _INCOMPRESSIBLE * len(data) or len(data) <= _SMALL


def _family(m: Member) -> str:
    return "x86" if x86_executable(m.data) else "general"


def pack(members: list[Member], ctx: CodecContext, optional: frozenset[int] = frozenset()) -> list[Block]:
    """The blocks worth keeping among ``members`` (each family one stream, tried by the effort's
    inner codecs); a member in no block keeps its own payload. ``optional``: the indices of members
    whose own payload is strong (a learned model's): the blocks are tried with them and without
    them, and the smaller total kept — with them a block can lose to their payloads and take the
    other members' gain with it."""
    with_all = _pack(members, ctx)
    rest = [m for m in members if m.index not in optional]
    if len(rest) == len(members):
        return with_all
    without = _pack(rest, ctx)
    return with_all if _total(members, with_all) <= _total(members, without) else without


def _total(members: list[Member], blocks: list[Block]) -> int:
    inside = {i for b in blocks for i in b.members}
    return sum(len(b.payload) for b in blocks) + sum(m.alone for m in members if m.index not in inside)


def _pack(members: list[Member], ctx: CodecContext) -> list[Block]:
    families: dict[str, list[Member]] = {}
    for m in members:
        families.setdefault(_family(m), []).append(m)
    blocks = []
    for family, group in families.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda m: order_key(m.key))
        stream = b"".join(m.data for m in group)
        if len(stream) > SOLID_MAX_BYTES:
            continue
        best: tuple[int, str, bytes] | None = None
        tried: set[str] = set()
        for inner in _INNER[ctx.effort]:
            if _INSTEAD.get(inner) in tried:
                continue
            if family == "x86":  # machine code: LZ after the branch filter beats modelling it byte by byte
                if inner != "xz":
                    continue
                inner = "xz-x86"
            try:
                payload = get_file_codec(inner).encode(stream, ctx)
                if payload is None or get_file_codec(inner).decode(payload, ctx, len(stream)) != stream:
                    continue
                tried.add(inner)
            except Exception:  # noqa: BLE001 - an inner codec that fails is no candidate
                continue
            if best is None or len(payload) < best[0]:
                best = (len(payload), inner, payload)
        if best is None:
            continue
        payload = classic_payload(SOLID_ID, _TOTAL.pack(len(stream)) + best[2])
        if len(payload) >= sum(m.alone for m in group):
            continue
        offsets, at = [], 0
        for m in group:
            offsets.append(at)
            at += len(m.data)
        blocks.append(Block(f"solid-{best[1]}", payload, tuple(m.index for m in group), tuple(offsets)))
    return blocks


def unpack(payload: bytes, ctx: CodecContext) -> bytes:
    """The decoded stream of a block's payload (every member's bytes, in order)."""
    found = split_classic(payload)
    if found is None or found[0] != SOLID_ID or len(found[1]) < _TOTAL.size:
        raise ValueError("not a solid block's payload; the holder row is corrupt")
    (total,) = _TOTAL.unpack_from(found[1])
    if total > SOLID_MAX_BYTES:
        raise ValueError(f"solid block claims {total:,} bytes, above {SOLID_MAX_BYTES:,}; the holder row is corrupt")
    inner = found[1][_TOTAL.size :]
    codec = split_classic(inner)
    if codec is None:
        raise ValueError("solid block without an inner codec; the holder row is corrupt")
    stream = get_file_codec(codec[0]).decode(inner, ctx, total)
    if len(stream) != total:
        raise ValueError(f"solid block decodes to {len(stream):,} bytes, not {total:,}; the holder row is corrupt")
    return stream


def member_bytes(stream: bytes, offset: int, size: int, sha256: str | None) -> bytes:
    """One member's bytes out of its block, checked against the sha256 its row records."""
    if offset < 0 or size < 0 or offset + size > len(stream):
        raise ValueError(f"member at {offset:,}+{size:,} lies outside its {len(stream):,}-byte block; the row is corrupt")
    data = stream[offset : offset + size]
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError("member bytes differ from the sha256 its row records; the block is corrupt")
    return data


class SolidBlocks:
    """The blocks a decode has opened, by holder id (the last few kept, at most ``max_bytes``);
    a holder row that is not at hand is fetched by ``fetch(holder id) -> payload``."""

    def __init__(self, fetch: Callable[[str], bytes | None] | None = None, max_bytes: int = SOLID_MAX_BYTES) -> None:
        self.fetch = fetch
        self.max_bytes = max_bytes
        self._open: OrderedDict[str, bytes] = OrderedDict()

    def stream(self, holder: str, ctx: CodecContext, payload: bytes | None = None) -> bytes:
        if holder in self._open:
            self._open.move_to_end(holder)
            return self._open[holder]
        if payload is None and self.fetch is not None:
            payload = self.fetch(holder)
        if payload is None:
            raise ValueError(f"the row holding its solid block ({holder}) is not in the dataset; not restored")
        stream = unpack(payload, ctx)
        self._open[holder] = stream
        while len(self._open) > 1 and sum(len(s) for s in self._open.values()) > self.max_bytes:
            self._open.popitem(last=False)
        return stream
