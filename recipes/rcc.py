"""Files inside Qt resource bundles (``.rcc``), as gcompris-qt-data ships its photos and voices.

Format (Qt's ``rcc`` v1-3): a ``qres`` header with the offsets of the tree, the data and the
names; tree nodes of 14 (v1) or 22 bytes; each file's data prefixed by its length, compressed
with zlib (flag 1, after a 4-byte size) or zstd (flag 4).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

__all__ = ["rcc_files"]


def rcc_files(data: bytes) -> Iterator[tuple[str, bytes]]:
    """``(path, content)`` of every file in a Qt resource bundle."""
    if data[:4] != b"qres":
        raise ValueError("not a Qt resource file (no 'qres' magic)")
    version, tree, payload, names = struct.unpack(">IIII", data[4:20])
    node = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (n,) = struct.unpack_from(">H", data, names + offset)
        return data[names + offset + 6 : names + offset + 6 + 2 * n].decode("utf-16-be")

    def walk(i: int, prefix: str) -> Iterator[tuple[str, bytes]]:
        base = tree + i * node
        name_offset, flags = struct.unpack_from(">IH", data, base)
        path = f"{prefix}/{name(name_offset)}" if i else prefix
        if flags & 2:  # directory
            count, first = struct.unpack_from(">II", data, base + 6)
            for child in range(first, first + count):
                yield from walk(child, path)
            return
        (offset,) = struct.unpack_from(">I", data, base + 10)
        (size,) = struct.unpack_from(">I", data, payload + offset)
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & 1:
            blob = zlib.decompress(blob[4:])
        elif flags & 4:
            import zstandard

            blob = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 28)
        yield path, blob

    yield from walk(0, "")
