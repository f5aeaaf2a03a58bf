"""The latents table: a Delta Lake table at the output, read and written through ``deltalake``.

    OUTPUT/_delta_log/            the transaction log: what is committed, version by version
    OUTPUT/part-<run>-<hash>.parquet   data parts, visible to readers only once a commit lists them
    OUTPUT/_aec/errors/           a second Delta table: inputs that could not be encoded (appended)
    OUTPUT/_aec/report.*          the last job's report

Dataset metadata (model, bundle sha256, codec, latent shape, ...) is the table's configuration,
one ``aec.<name>`` property per field holding its JSON value, so Spark's ``SHOW TBLPROPERTIES``
or ``DeltaTable.metadata().configuration`` show it; every part's Parquet schema carries it too.

Storage options: s3fs's names (``endpoint_url``, ``key``, ``secret``, ``token``) or the standard
``AWS_*`` variables, translated here into delta-rs's names.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from cluster.storage import Location, StorageError, storage_error

__all__ = ["ERRORS_TABLE", "ERROR_SCHEMA", "META_DIR", "PROPERTY_PREFIX", "REPORT_HTML", "REPORT_JSON", "REPORT_PNG",
           "arrow_dataset", "delta_options", "load_table", "read_properties", "table_properties", "table_uri"]

META_DIR = "_aec"
ERRORS_TABLE = f"{META_DIR}/errors"
#: the last job's report (cluster/report.py writes it, LatentDataset.report_summary reads it)
REPORT_JSON = f"{META_DIR}/report.json"
REPORT_PNG = f"{META_DIR}/report.png"
REPORT_HTML = f"{META_DIR}/report.html"
PROPERTY_PREFIX = "aec."

ERROR_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("sha256", pa.string()),  # of the bytes read, when they could be read
    pa.field("bytes", pa.int64()),
    pa.field("stage", pa.string(), nullable=False),  # read | decode | encode
    pa.field("reason", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("at", pa.string(), nullable=False),  # UTC, ISO 8601
])


def table_uri(loc: Location) -> str:
    return loc.path if loc.is_local else f"{loc.protocol}://{loc.path}"


def delta_options(loc: Location) -> dict[str, str]:
    """``loc``'s storage options in delta-rs's names (``AWS_*``); empty for local paths."""
    if loc.is_local:
        return {}
    if loc.protocol not in ("s3", "s3a"):
        raise StorageError(f"output {loc.url!r}: Delta tables are written to local paths or s3:// here; "
                           "choose one of those")
    o = loc.storage_options
    pairs = {
        "AWS_ENDPOINT_URL": o.get("endpoint_url") or o.get("client_kwargs", {}).get("endpoint_url")
        or os.environ.get("AWS_ENDPOINT_URL"),
        "AWS_ACCESS_KEY_ID": o.get("key") or o.get("aws_access_key_id") or os.environ.get("AWS_ACCESS_KEY_ID"),
        "AWS_SECRET_ACCESS_KEY": o.get("secret") or o.get("aws_secret_access_key")
        or os.environ.get("AWS_SECRET_ACCESS_KEY"),
        "AWS_SESSION_TOKEN": o.get("token") or os.environ.get("AWS_SESSION_TOKEN"),
        "AWS_REGION": o.get("region") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        or "us-east-1",
    }
    options = {k: str(v) for k, v in pairs.items() if v}
    if urlsplit(options.get("AWS_ENDPOINT_URL", "")).scheme == "http":
        options["AWS_ALLOW_HTTP"] = "true"
    if o.get("anon"):
        options["AWS_SKIP_SIGNATURE"] = "true"
    return options


def load_table(loc: Location, version: int | None = None) -> DeltaTable | None:
    """The Delta table at ``loc`` (at ``version``), or None where there is none."""
    try:
        return DeltaTable(table_uri(loc), version=version, storage_options=delta_options(loc))
    except TableNotFoundError:
        return None
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, no secrets
        text = str(exc)
        if version is not None and ("version" in text.lower() or "not found" in text.lower()):
            raise StorageError(f"dataset {loc.url!r} has no version {version}; `aec inspect {loc.url} --history` "
                               "lists them") from None
        raise storage_error(exc, loc.url, "dataset", loc) from None


def arrow_dataset(table: DeltaTable, loc: Location) -> pds.Dataset:
    """The committed rows as a pyarrow dataset, read through pyarrow's own filesystem (delta-rs's
    default Python filesystem can abort at interpreter exit, delta-rs #2184)."""
    return table.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(loc.path, loc.pyarrow_fs()))


def table_properties(metadata: dict[str, Any]) -> dict[str, str]:
    return {f"{PROPERTY_PREFIX}{k}": json.dumps(v, sort_keys=True) for k, v in metadata.items()}


def read_properties(table: DeltaTable) -> dict[str, Any]:
    """The dataset metadata an aec table carries (empty for a Delta table aec did not write)."""
    config = table.metadata().configuration
    return {k[len(PROPERTY_PREFIX):]: json.loads(v) for k, v in config.items()
            if k.startswith(PROPERTY_PREFIX) and v is not None}
