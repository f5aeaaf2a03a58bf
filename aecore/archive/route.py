"""Which kind a file is: image, audio, text or bytes, by its content (magic bytes) first, then
by its name. The kind picks the codecs a file competes with (``FileCodec.kinds``) and the
model that may join them; it never decides whether a file is archived (every file is)."""

from __future__ import annotations

import posixpath

__all__ = ["AUTO", "KINDS", "route"]

KINDS = ("image", "audio", "text", "bytes")
#: what a compress job names as its modality to route each file by its content
AUTO = "auto"

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image"), (b"\xff\xd8\xff", 0, "image"), (b"GIF87a", 0, "image"),
    (b"GIF89a", 0, "image"), (b"II*\x00", 0, "image"), (b"MM\x00*", 0, "image"), (b"\x00\x00\x00\x0cJXL ", 0, "image"),
    (b"\xff\x0a", 0, "image"), (b"fLaC", 0, "audio"), (b"OggS", 0, "audio"), (b"ID3", 0, "audio"),
)
_RIFF = {b"WAVE": "audio", b"WEBP": "image"}
_BY_NAME = {
    "image": (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".jxl"),
    "audio": (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3"),
}


def _is_text(head: bytes) -> bool:
    """No NUL, and UTF-8 (a character cut at the end of the sample allowed) or almost all printable."""
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason in ("unexpected end of data",):
            return True
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in head)
    return printable >= 0.95 * len(head)


def route(name: str, data: bytes) -> str:
    """The kind of the file ``name`` holding ``data``."""
    head = data[:8192]
    for magic, at, kind in _MAGIC:
        if head[at : at + len(magic)] == magic:
            return kind
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    suffix = posixpath.splitext(name)[1].lower()
    if _is_text(head):
        return "text"
    for kind, suffixes in _BY_NAME.items():
        if suffix in suffixes:
            return kind
    return "bytes"
