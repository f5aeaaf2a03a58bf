"""The payload: everything decode needs besides the model, in one byte string per file.

::

    u8 version (4) | u8 flags (bit 0: lossless, bit 1: stored, bit 2: joint) | modality info (the modality's Info.pack)
    [lossless: u8 k | k bytes container name | u32 r | r bytes container recipe]
    u32 pieces
    per piece:  u32 n | n bytes: the latents, as the model's latent codec writes them
                [lossless: u32 m | m bytes: the exact values range-coded under the decoder's distribution]
                (lossless, n = 0xFFFFFFFF: no latents; the values coded by the classic predictors alone)
    [stored: the file's bytes as they are, instead of the container section and the pieces]

Joint (lossy, long 1-D inputs): the pieces are consecutive spans of one latent sequence, analysed
and synthesized over the whole input (in overlapping tiles), so chunk boundaries leave no seam;
without it each piece was analysed and synthesized on its own (versions 2-3 always).

Reading goes through :class:`Reader`, which checks every section's length against what is there:
a truncated or padded payload is a :class:`PayloadError`, never a silently wrong restore.
"""

from __future__ import annotations

import struct

from aecore.containers import Exact, get_container

__all__ = ["JOINT", "LOSSLESS", "NO_LATENTS", "PAYLOAD_VERSION", "READS", "STORED", "U32", "PayloadError", "Reader",
           "container_section", "read_container_section"]

PAYLOAD_VERSION = 4
READS = (2, 3, 4)  # version 2: no container section (lossless files written canonically); 4: the joint flag
LOSSLESS, STORED, JOINT = 1, 2, 4
NO_LATENTS = 0xFFFFFFFF  # a lossless piece's latent length when it is coded without the model
U32 = struct.Struct("<I")


class PayloadError(ValueError):
    """A payload that cannot be decoded (corrupt, truncated, or over a limit); one line."""


def container_section(exact: Exact | None) -> bytes:
    name = exact.container.encode() if exact is not None else b""
    recipe = exact.recipe if exact is not None else b""
    return bytes([len(name)]) + name + U32.pack(len(recipe)) + recipe


class Reader:
    """Sections of a payload, each length checked against what is there: a truncated or padded
    payload is a :class:`PayloadError`, never a silently wrong restore."""

    def __init__(self, payload: bytes, pos: int) -> None:
        self.payload, self.pos = payload, pos

    def take(self, n: int) -> bytes:
        if n > len(self.payload) - self.pos:
            raise PayloadError(f"payload truncated: a section of {n} bytes at offset {self.pos} runs past its end "
                               f"({len(self.payload)} bytes); the row is corrupt")
        self.pos += n
        return self.payload[self.pos - n : self.pos]

    def u32(self) -> int:
        return U32.unpack(self.take(4))[0]

    def finish(self) -> None:
        if self.pos != len(self.payload):
            raise PayloadError(f"payload has {len(self.payload) - self.pos} bytes after its last section; the row is corrupt")


def read_container_section(read: Reader) -> Exact | None:
    name = read.take(read.take(1)[0]).decode(errors="replace")
    recipe = read.take(read.u32())
    if not name:
        return None
    return Exact(name, recipe, get_container(name).bits(recipe))
