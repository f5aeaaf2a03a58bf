"""The best codec for one file: every candidate its kind and the effort allow, each checked to
decode to the very bytes, the smallest payload kept.

    data, kind -> [stored, zstd(-dict), brotli, xz, ppmd, jxl-*, flac-wav, aec-<modality>]
               -> encode -> decode == data ? -> smallest (ties: the earlier, cheaper codec)

``stored`` is always a candidate, so no file is ever stored larger than itself plus its codec
header. Candidates are decoded again smallest first, until one gives back the very bytes: a
candidate that fails or decodes differently is dropped, never written (and only the winner, as a
rule, pays for a decode). An
incompressible file (a probe of zstd -1 on its first MiB saves under 3 %) skips the slow
general-purpose codecs (brotli, xz, PPMd), not the media transcoders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aecore.archive.codec import FILE_CODECS, CodecContext, FileCodec

__all__ = ["EFFORTS", "Choice", "candidates", "choose"]

EFFORTS = ("fast", "default", "max")
_GENERAL_SLOW = ("brotli", "xz", "ppmd")


@dataclass(frozen=True)
class Choice:
    codec: str
    payload: bytes
    learned: bool
    sizes: dict[str, int] = field(default_factory=dict)  # payload bytes of every candidate that applied
    seconds: dict[str, float] = field(default_factory=dict)  # encode (+ check) time of each


def candidates(kind: str, effort: str) -> list[FileCodec]:
    if effort not in EFFORTS:
        raise ValueError(f"effort {effort!r} is not one of {', '.join(EFFORTS)}")
    return [codec for codec in (cls() for cls in FILE_CODECS.values()) if codec.exact and codec.tried(kind, effort)]


def _incompressible(data: bytes) -> bool:
    import zstandard

    if len(data) < 65536:
        return False
    probe = data[: 1 << 20]
    return len(zstandard.ZstdCompressor(level=1).compress(probe)) > 0.97 * len(probe)


def choose(data: bytes, kind: str, ctx: CodecContext) -> Choice:
    skip_slow = _incompressible(data)
    found: list[tuple[int, int, FileCodec, bytes]] = []  # (size, order tried, codec, payload)
    sizes: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for codec in candidates(kind, ctx.effort):
        if skip_slow and codec.codec_id in _GENERAL_SLOW:
            continue
        started = time.perf_counter()
        try:
            payload = codec.encode(data, ctx)
        except Exception:  # noqa: BLE001 - a codec that fails on this file is no candidate for it
            payload = None
        seconds[codec.codec_id] = time.perf_counter() - started
        if payload is not None:
            sizes[codec.codec_id] = len(payload)
            found.append((len(payload), len(found), codec, payload))
    # the smallest payload whose decode gives back the very bytes (the learned model's payloads are
    # verified inside its encoder, the decode being the costly part); a candidate that fails is dropped
    for _, _, codec, payload in sorted(found, key=lambda f: f[:2]):
        started = time.perf_counter()
        try:
            ok = codec.checked_at_encode or codec.decode(payload, ctx, len(data)) == data
        except Exception:  # noqa: BLE001
            ok = False
        seconds[codec.codec_id] += time.perf_counter() - started
        if ok:
            return Choice(codec.codec_id, payload, codec.learned, sizes, seconds)
        del sizes[codec.codec_id]
    raise AssertionError("stored always applies")
