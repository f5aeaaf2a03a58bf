"""The latents dataset schema, defined once, in plain Arrow types (no Ray extension types).

Dataset-level metadata (how to decode) is the table's configuration (cluster.table) and is also
stored as JSON under the schema metadata key ``aec`` of every Parquet part.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

__all__ = ["METADATA_KEY", "latent_schema"]

METADATA_KEY = b"aec"


def latent_schema(metadata: dict[str, Any] | None = None) -> pa.Schema:
    fields = [
        pa.field("id", pa.string(), nullable=False),  # stable: hash of relative key + content
        pa.field("uri", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),  # path relative to the collection root: where decode restores it
        pa.field("sha256", pa.string(), nullable=False),  # of the source bytes
        pa.field("modality", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_version", pa.int32(), nullable=False),  # 0 where no model coded the row
        # the codec that wrote the payload (aecore.archive: "jxl-jpeg", "zstd-dict", "aec-image", ...)
        pa.field("codec", pa.string(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),  # original file size
        pa.field("shape", pa.list_(pa.int32()), nullable=False),  # original shape, e.g. [H, W, C]
        pa.field("payload", pa.binary(), nullable=False),  # everything decode needs besides the model
        pa.field("payload_bytes", pa.int64(), nullable=False),  # len(payload): sizes without reading payloads
        # quantized, for queries (metadata latent_shape gives its shape). A list, not a fixed-size list: Delta has no
        # fixed-size type and Polars' scan_delta refuses files that hold one.
        pa.field("latent", pa.list_(pa.float32()), nullable=False),
        pa.field("quality", pa.string()),  # JSON of the metrics measured on this row (every few rows)
        # the entry as tar keeps it: "file", "symlink" (target in `link`) or "dir"; its mode and mtime
        # (null where the store has none, e.g. object storage)
        pa.field("entry", pa.string(), nullable=False),
        pa.field("link", pa.string()),
        pa.field("mode", pa.int32()),
        pa.field("mtime_ns", pa.int64()),
        # a file coded with others in one solid block (aecore.archive.solid): the id of the row that holds the
        # block's payload, and where this file's bytes start in the decoded block; null for a file coded alone
        pa.field("solid", pa.string()),
        pa.field("offset", pa.int64()),
    ]
    meta = {METADATA_KEY: json.dumps(metadata, sort_keys=True).encode()} if metadata else None
    return pa.schema(fields, metadata=meta)
