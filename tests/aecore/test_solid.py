"""Solid blocks (aecore.archive.solid): alike files coded as one stream, kept only where that is
smaller than the files one by one; each member comes back exactly, checked by its sha256; a
damaged or boastful block is refused; an x86 executable gets the branch filter."""

from __future__ import annotations

import hashlib
import os

import pytest

from aecore.archive import CodecContext, SolidBlocks, choose, decode_payload, order_key
from aecore.archive.classic import x86_executable
from aecore.archive.codec import classic_payload
from aecore.archive.solid import _TOTAL, SOLID_MAX_BYTES, Member, member_bytes, pack, unpack
from jobs.sample_data import make_text_collection


def _members(files: dict[str, bytes], ctx: CodecContext) -> list[Member]:
    return [Member(i, key, data, len(choose(data, "text", ctx).payload)) for i, (key, data) in enumerate(files.items())]


def test_alike_files_share_a_block_that_beats_them_one_by_one(tmp_path):
    make_text_collection(tmp_path, 12, max_bytes=4000, seed=3)
    files = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    ctx = CodecContext()
    members = _members(files, ctx)
    [block] = pack(members, ctx)
    assert block.codec == "solid-cm2" and len(block.members) == len(files)  # text: context mixing beats xz
    assert len(block.payload) < sum(m.alone for m in members)  # else it would not be kept
    stream = SolidBlocks().stream("holder", ctx, block.payload)
    for i, offset in zip(block.members, block.offsets):
        data = members[i].data
        assert member_bytes(stream, offset, len(data), hashlib.sha256(data).hexdigest()) == data


def test_files_that_share_nothing_keep_their_own_payloads():
    ctx = CodecContext()
    noise = {f"n{i}": os.urandom(70_000) for i in range(3)}
    assert pack([Member(i, k, d, len(d) + 8) for i, (k, d) in enumerate(noise.items())], ctx) == []


def test_a_damaged_block_or_member_is_refused():
    ctx = CodecContext()
    data = [b"alpha " * 500, b"beta " * 500]
    [block] = pack([Member(i, f"f{i}", d, len(d)) for i, d in enumerate(data)], ctx)
    stream = unpack(block.payload, ctx)
    with pytest.raises(ValueError, match="sha256"):
        member_bytes(stream, block.offsets[1], len(data[1]), hashlib.sha256(b"other").hexdigest())
    with pytest.raises(ValueError, match="outside"):
        member_bytes(stream, block.offsets[1], len(data[1]) + 1, None)
    boastful = classic_payload("solid", _TOTAL.pack(SOLID_MAX_BYTES + 1) + block.payload[8 + _TOTAL.size:])
    with pytest.raises(ValueError, match="claims"):
        unpack(boastful, ctx)
    with pytest.raises(ValueError, match="not in the dataset"):
        SolidBlocks(fetch=lambda holder: None).stream("gone", ctx)


def test_sources_and_their_compiled_files_sit_together():
    keys = ["pkg/b.py", "pkg/__pycache__/a.cpython-311.pyc", "pkg/a.py", "pkg/data.txt",
            "pkg/__pycache__/b.cpython-311.pyc"]
    assert sorted(keys, key=order_key) == ["pkg/a.py", "pkg/__pycache__/a.cpython-311.pyc", "pkg/b.py",
                                            "pkg/__pycache__/b.cpython-311.pyc", "pkg/data.txt"]


def test_an_x86_executable_gets_the_branch_filter():
    import numpy._core._multiarray_umath as compiled

    with open(compiled.__file__, "rb") as f:  # a real x86-64 shared library the set-up installs
        exe = f.read(1 << 20)
    assert x86_executable(exe) and not x86_executable(b"\x7fELF" + bytes(40)) and not x86_executable(b"MZ")
    choice = choose(exe, "bytes", CodecContext())
    assert {"xz", "xz-x86"} <= set(choice.sizes)
    assert choice.sizes["xz-x86"] < choice.sizes["xz"]  # x86 code: absolute branch targets repeat
    assert choice.codec == "xz-x86" and decode_payload("xz-x86", choice.payload, CodecContext(), len(exe)) == exe


def test_members_with_strong_payloads_of_their_own_are_tried_out_of_the_block(tmp_path):
    """A learned model's payloads (``optional``) can make a block of every file lose; the block of
    the others still pays and is kept, the strong ones keep their own payloads."""
    make_text_collection(tmp_path, 12, max_bytes=4000, seed=3)
    files = {p.name: p.read_bytes() for p in sorted(tmp_path.iterdir())}
    ctx = CodecContext()
    members = _members(files, ctx)
    strong = frozenset(range(0, 12, 2))  # as if a model coded every other file in a few bytes
    members = [Member(m.index, m.key, m.data, 4 if m.index in strong else m.alone) for m in members]
    assert pack(members, ctx) == []  # one block of all twelve loses to the strong payloads
    [block] = pack(members, ctx, strong)
    assert set(block.members) == set(range(12)) - strong
    assert len(block.payload) < sum(m.alone for m in members if m.index not in strong)
