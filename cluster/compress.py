"""A compress job on Ray Data, committed progressively to a Delta table, resumable.

    list inputs - committed uris
      -> read_inputs (tasks) -> EncodeBatch (actor pool) -> stage_part (tasks: parts under the table)
      -> driver: DatasetCommitter.commit every few parts, one Delta transaction each (cluster.commit)

Killing the driver loses at most the parts written since the last commit; re-running the same
job encodes only the inputs that are not committed yet. Jobs writing one table at once each
commit their inputs exactly once between them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import ray

from aecore import get_modality, load_bundle, read_bundle
from aecore.archive import AUTO, order_key
from aecore.embedding import EMBEDDING_NOTE
from aecore.payload import PAYLOAD_VERSION
from cluster.commit import DatasetCommitter
from cluster.encode import ArchiveSettings, EncodeBatch, LearnedModel
from cluster.metrics import ProcessMetrics
from cluster.read import printable, read_inputs, read_tree, unencodable_name
from cluster.runtime import STORAGE_TASK_CPUS, actor_cpus, check_pool_fits, io_tasks
from cluster.schema import latent_schema
from cluster.stage import stage_part
from cluster.storage import InputFile, Location, StorageError, list_collection, list_tree, with_retries

__all__ = ["CompressRequest", "archive_metadata", "check_locations", "collection_dictionary", "compress_collection",
           "dataset_metadata", "load_dictionary", "models_ref", "store_dictionary"]


@dataclass(frozen=True)
class CompressRequest:
    bundle: bytes | None  # the job's model (None: an archive whose every file is coded by classic codecs)
    model_name: str
    model_version: int
    input: Location
    output: Location
    # what the compress spec says (jobs.spec is the one source of their defaults)
    workers: int
    gpus: float
    batch_size: int
    cpus_per_worker: float | None
    quality_every: int
    max_file_bytes: int
    commit_every: int  # staged parts per commit (also: at least every commit_seconds)
    commit_seconds: float
    lossless: bool | None  # None: the modality's default (text: lossless)
    rate_point: float | None  # of a variable-rate model; None: the model's own
    overwrite: bool = False
    metadata: dict[str, Any] | None = None  # extra dataset-level metadata (job name, registry, ...)
    files: tuple[InputFile, ...] | None = None  # the input listing, if the caller made it already
    job_name: str = ""  # tag of the job's metrics
    modality: str | None = None  # "auto": every file, routed by content; None: the model's modality
    effort: str = "default"  # how many codecs each file tries in an exact archive (aecore.archive.EFFORTS)
    models: tuple[LearnedModel, ...] = ()  # the learned models of an exact archive, by modality

    @property
    def archive(self) -> bool:
        """Each file by the best codec for it: every auto job (exact unless ``lossless`` is False),
        and every lossless one."""
        return self.modality == AUTO or bool(self.lossless)


def compress_collection(req: CompressRequest, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run the job; return the committed dataset's summary. ``progress(done, total)`` is
    called as inputs are committed."""
    started = time.perf_counter()
    check_locations(req.input, req.output)
    # the actors' CPUs sized once (the default depends on what is free now), then checked before
    # any work or write: a pool that leaves its reads and writes no CPU never starts
    req = replace(req, cpus_per_worker=actor_cpus(req.workers, req.cpus_per_worker))
    check_pool_fits(f"compress job {req.job_name!r}", req.workers, req.cpus_per_worker, beside=STORAGE_TASK_CPUS)
    if req.archive:
        files = list(req.files) if req.files is not None else (list_tree(req.input) if req.modality == AUTO else
                                                                 list_collection(req.input, get_modality(
                                                                     _modality_of(req)).extensions))
        dictionary = collection_dictionary(req, files)
        settings = ArchiveSettings(modality=req.modality or _modality_of(req), effort=req.effort,
                                   dictionary=dictionary, models=req.models, embedders=embedders(req.models),
                                   lossless=req.lossless is not False, rate_point=req.rate_point)
        metadata = {**archive_metadata(req, settings), **(req.metadata or {})}
        compressor: Any = None
    else:
        compressor = load_bundle(req.bundle, lossless=req.lossless, rate_point=req.rate_point)
        files = list(req.files) if req.files is not None else list_collection(req.input, compressor.modality.extensions)
        metadata = {**dataset_metadata(compressor, req.model_name, req.model_version, req.input, req.rate_point),
                    **(req.metadata or {})}
        settings = None
    schema = latent_schema(metadata)
    committer = DatasetCommitter(req.output, metadata, schema, run_id=uuid.uuid4().hex[:12])
    committer.open(overwrite=req.overwrite)
    if settings is not None and settings.dictionary is not None:
        store_dictionary(req.output, settings.dictionary)
    return _compress(req, compressor, files, committer, started, progress, settings)


def _modality_of(req: CompressRequest) -> str:
    if req.modality and req.modality != AUTO:
        return req.modality
    if req.bundle is None:
        raise ValueError("a compress request without a model must be modality auto")
    return read_bundle(req.bundle)["modality"]


def models_ref(models: tuple[LearnedModel, ...]) -> str:
    """What an archive's models are, as one comparable string (``image=zoo:image-small@1,...``)."""
    return ",".join(f"{m.modality}={m.name}@{m.version}" for m in sorted(models, key=lambda m: m.modality)) or "none"


def embedders(models: tuple[LearnedModel, ...]) -> tuple[LearnedModel, ...]:
    """The model that gives each modality's files their query embedding: the archive's own model
    of that modality, else the modality's default zoo model (when this installation ships one)."""
    from aecore.registry import MODALITIES
    from aecore.zoo import default_entry

    named = {m.modality: m for m in models}
    out = []
    for modality in sorted(MODALITIES):
        entry = default_entry(modality)
        if modality in named:
            out.append(named[modality])
        elif entry is not None:
            out.append(LearnedModel(modality, f"zoo:{entry.name}", entry.version, entry.path.read_bytes()))
    return tuple(out)


def archive_metadata(req: CompressRequest, settings: ArchiveSettings) -> dict[str, Any]:
    """What an archive records: its models by modality, its dictionary, its codecs' libraries,
    whether it is exact (a lossy archive codes photos and sounds lossy, the rest exactly)."""
    from aecore.archive import codec_libraries
    from aecore.bundle import bundle_sha256

    models = {m.modality: {"ref": f"{m.name}@{m.version}", "bundle_sha256": bundle_sha256(m.bundle)}
              for m in settings.models}
    return {
        "format": "aec-dataset/2",
        "modality": settings.modality,
        "models": models,
        "model_ref": models_ref(settings.models),
        "bundle_sha256": hashlib.sha256("".join(sorted(v["bundle_sha256"] for v in models.values())).encode()).hexdigest(),
        "codec": "best per file",
        "codecs": codec_libraries(),
        "effort": settings.effort,
        "zstd_dictionary": hashlib.sha256(settings.dictionary).hexdigest() if settings.dictionary else None,
        "rate_point": settings.rate_point,
        "input": req.input.url,
        "payload_version": PAYLOAD_VERSION,
        "latent_shape": None,  # one per modality: embeddings
        "embeddings": {m.modality: {"model": f"{m.name}@{m.version}", "bundle_sha256": bundle_sha256(m.bundle),
                                    "shape": list(load_bundle(m.bundle).query_latent_shape)}
                       for m in settings.embedders},
        "lossless": settings.lossless,
        "latent": EMBEDDING_NOTE + "; empty for a file of another kind or one its modality cannot read",
    }


#: files sampled for the collection's zstd dictionary (small ones: where a dictionary pays)
DICTIONARY_SAMPLE_FILES, DICTIONARY_SAMPLE_MAX = 400, 64 * 1024


def collection_dictionary(req: CompressRequest, files: list[InputFile]) -> bytes | None:
    """The table's zstd dictionary: the one an earlier run of this table trained (an append keeps
    it: its rows decode with it), else, at effort max, one trained now on a sample of the
    collection's small files (at the other efforts the files that share most go into solid blocks,
    which need no dictionary beside the table)."""
    from aecore.archive import train_dictionary
    from cluster.table import load_table, read_properties

    table = load_table(req.output) if not req.overwrite else None
    if table is not None:
        recorded = read_properties(table).get("zstd_dictionary")
        return load_dictionary(req.output, recorded) if recorded else None
    if req.effort != "max":  # solid blocks take what a dictionary would share, and store no dictionary
        return None
    small = [f for f in files if 0 < f.size <= DICTIONARY_SAMPLE_MAX]
    step = max(1, len(small) // DICTIONARY_SAMPLE_FILES)
    samples = []
    for f in small[::step][:DICTIONARY_SAMPLE_FILES]:
        try:
            with req.input.fs.open(f.path, "rb") as fh:
                samples.append(fh.read(DICTIONARY_SAMPLE_MAX))
        except OSError:
            continue  # read again (and reported) by the job itself
    return train_dictionary(samples)


def _dictionary_path(output: Location, sha: str) -> str:
    import posixpath

    from cluster.table import META_DIR

    return posixpath.join(output.path, META_DIR, "dictionaries", f"{sha}.zdict")


def store_dictionary(output: Location, dictionary: bytes) -> None:
    """Write the dictionary beside the table (once: its name is its sha256)."""
    import posixpath

    path = _dictionary_path(output, hashlib.sha256(dictionary).hexdigest())
    if not with_retries(output.fs.exists, path, what=f"output {output.url!r}"):
        with_retries(output.fs.makedirs, posixpath.dirname(path), exist_ok=True, what=f"output {output.url!r}")
        with_retries(output.fs.pipe_file, path, dictionary, what=f"output {output.url!r}")


def load_dictionary(output: Location, sha: str) -> bytes:
    path = _dictionary_path(output, sha)
    try:
        data = with_retries(output.fs.cat_file, path, what=f"dataset {output.url!r}")
    except FileNotFoundError:
        raise StorageError(f"dataset {output.url!r} lacks its zstd dictionary {path}; restore it from a backup") from None
    if hashlib.sha256(data).hexdigest() != sha:
        raise StorageError(f"dataset {output.url!r}: its zstd dictionary {path} is not the one recorded; restore it")
    return data


def _compress(req: CompressRequest, compressor: Any, files: list[InputFile], committer: DatasetCommitter,
              started: float, progress: Callable[[int, int], None] | None,
              settings: ArchiveSettings | None = None) -> dict[str, Any]:
    committed = committer.committed([req.input.uri(f.path) for f in files])
    todo = [f for f, done in zip(files, committed) if not done]
    committer.run["skipped"] = skipped = len(files) - len(todo)
    committer.run["inputs"] = len(files)
    refused = {f.path: unencodable_name(f.path) or (
        f"file of {f.size} bytes exceeds max_file_bytes={req.max_file_bytes}; raise it in the spec"
        if f.size > req.max_file_bytes else None) for f in todo}
    oversized = [f for f in todo if refused[f.path]]
    readable = [f for f in todo if not refused[f.path]]
    if oversized:
        committer.commit([_error_descriptor([
            {"uri": req.input.uri(printable(f.path)), "sha256": None, "bytes": f.size, "stage": "read",
             "reason": refused[f.path]} for f in oversized])])
    metrics = ProcessMetrics.from_env("driver")
    timeline: list[list[float]] = []  # [seconds since start, rows committed by this run], per commit

    def report(done: int) -> None:
        elapsed = time.perf_counter() - started
        run = committer.run
        timeline.append([round(elapsed, 3), run["rows"]])
        metrics.set("aec_job_progress", done / len(files) if files else 1.0, job_name=req.job_name)
        metrics.set("aec_job_rows_committed", committer.rows, job_name=req.job_name)
        metrics.set("aec_job_rows_per_second", run["rows"] / elapsed if elapsed else 0.0, job_name=req.job_name)
        # bytes on storage: the parts this run wrote while it runs; the whole table once it is done
        metrics.set("aec_job_compression_ratio",
                    run["input_bytes"] / run["part_bytes"] if run.get("part_bytes") else 0.0, job_name=req.job_name)
        metrics.set("aec_job_errors", run["errors"], job_name=req.job_name)
        if progress:
            progress(done, len(files))

    done = skipped + len(oversized)
    report(done)
    stream = _CommitStream()
    try:
        if readable:
            for batch in _pipeline(req, readable, committer, settings).iter_batches(batch_size=None,
                                                                                    batch_format="pyarrow"):
                stream.buffer.extend(batch.to_pylist())
                if len(stream.buffer) >= req.commit_every or time.monotonic() - stream.last >= req.commit_seconds:
                    done += stream.flush(committer)
                    report(done)
            done += stream.flush(committer)
            report(done)
    except BaseException as exc:
        metrics.close(linger=0)
        stream.buffer.clear()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        try:
            committer.finish("failed", reason=reason[:300])
        except Exception:  # noqa: BLE001 - the store may be what failed; the job's own error is the one to show
            pass
        if isinstance(exc, StorageError | KeyboardInterrupt):
            raise
        raise StorageError(f"compress job failed after committing {committer.run['rows']} new rows "
                           f"({type(exc).__name__}); re-run it to finish the rest") from exc
    try:
        from cluster.dataset import open_dataset

        metrics.set("aec_job_compression_ratio", open_dataset(req.output).totals()["ratio"] or 0.0, job_name=req.job_name)
    except Exception:  # noqa: BLE001 - a gauge left at the run's own figure; the job is done
        pass
    metrics.close()
    summary = committer.finish("completed", seconds=round(time.perf_counter() - started, 3), timeline=timeline)
    summary["report"] = _report(req, files, compressor, committer.run)
    summary.update(inputs=len(files), skipped=skipped, encoded=summary["run"]["rows"],
                   seconds=time.perf_counter() - started, output=req.output.url)
    return summary


def dataset_metadata(compressor: Any, model_name: str, model_version: int, input_loc: Location,
                     rate_point: float | None) -> dict[str, Any]:
    """What a dataset records about how it was encoded (read back by decode and by appends)."""
    return {
        "format": "aec-dataset/1",
        "modality": compressor.modality.name,
        "model": model_name,
        "model_version": model_version,
        "model_ref": f"{model_name}@{model_version}",
        "model_class": compressor.architecture,
        "codec": compressor.codec_name,
        "bundle_sha256": compressor.bundle_sha256,
        "rate_point": rate_point,
        "input": input_loc.url,
        "payload_version": PAYLOAD_VERSION,
        "latent_shape": list(compressor.query_latent_shape),
        "lossless": compressor.lossless,
        "latent": EMBEDDING_NOTE,
    }


def check_locations(input_loc: Location, output: Location) -> None:
    """An output that is, contains or sits inside its input is refused: the job would encode
    its own output, and --overwrite would delete the collection."""
    if not output.is_local and "/" not in output.path.strip("/"):
        raise StorageError(f"output {output.url!r} is a bucket root; write the dataset under a prefix, "
                           f"e.g. {output.url.rstrip('/')}/latents")
    relation = output.overlaps(input_loc)
    if relation:
        raise StorageError(f"output {output.url!r} {relation} the input {input_loc.url!r}; "
                           "choose an output outside the collection")


def _report(req: CompressRequest, files: list[InputFile], compressor: Any, run: dict[str, Any]) -> str | None:
    """Write the job's report; a report that cannot be made is logged, never a failed job."""
    import logging

    from cluster.dataset import open_dataset
    from cluster.report import write_archive_report, write_report
    from cluster.table import REPORT_HTML

    try:
        if compressor is None:  # an exact archive: each file by the best codec for it
            write_archive_report(open_dataset(req.output), run)
        else:
            write_report(open_dataset(req.output), req.input, files, compressor, run)
    except Exception as exc:  # noqa: BLE001
        logging.getLogger(__name__).warning("no report for %s: %s: %s", req.output.url, type(exc).__name__, exc)
        return None
    return req.output.join(REPORT_HTML).url


class _CommitStream:
    """Descriptors waiting for the next commit (driver-side, one job at a time)."""

    def __init__(self) -> None:
        self.buffer: list[dict[str, Any]] = []
        self.last = time.monotonic()

    def flush(self, committer: DatasetCommitter) -> int:
        pending, self.buffer = self.buffer, []
        self.last = time.monotonic()
        if not pending:
            return 0
        committer.commit(pending)
        # progress counts inputs handled: rows another job committed first are done too
        return sum(len(d["ids"]) + len(json.loads(d["errors"])) for d in pending)


def _pipeline(req: CompressRequest, files: list, committer: DatasetCommitter,
              settings: ArchiveSettings | None) -> ray.data.Dataset:
    cpus = req.cpus_per_worker or 1.0  # sized by compress_collection
    # Paths in blocks of one encoder batch; each read task reads its files one by one (cluster.read).
    paths = [f.path for f in files]
    if settings is not None:  # an archive: few, large parts (each part costs its footer, stats and a log entry)
        # alike files next to each other, so the solid blocks of one batch find what they share
        ordered = sorted(files, key=lambda f: order_key(f.path))
        blocks = [pa.table({"path": chunk}) for chunk in archive_blocks(ordered)]
    else:
        blocks = [pa.table({"path": paths[i : i + req.batch_size]}) for i in range(0, len(paths), req.batch_size)]
    data = ray.data.from_arrow(blocks).map_batches(
        read_tree if settings is not None and settings.modality == AUTO else read_inputs,
        num_cpus=STORAGE_TASK_CPUS,  # reading waits on storage: a token ask (cluster.runtime)
        compute=ray.data.TaskPoolStrategy(size=io_tasks(req.workers)),
        batch_size=None,
        batch_format="pyarrow",
        fn_kwargs={"root": req.input.url, "storage_options": dict(req.input.storage_options),
                   "max_bytes": req.max_file_bytes},
    )
    data = data.map_batches(
        EncodeBatch,
        fn_constructor_kwargs={
            "bundle": ray.put(req.bundle) if req.bundle is not None else None,
            "archive": ray.put(settings) if settings is not None else None,
            "model_name": req.model_name,
            "model_version": req.model_version,
            "root": req.input.path,
            "uri_prefix": req.input.uri(""),
            "quality_every": req.quality_every,
            "lossless": req.lossless,
            "rate_point": req.rate_point,
            "threads": max(1, math.floor(cpus)),
            "job_name": req.job_name,
            "effort": req.effort,
        },
        compute=ray.data.ActorPoolStrategy(size=req.workers),
        batch_size=req.batch_size if settings is None else None,  # an archive's blocks are sized below
        batch_format="pyarrow",
        num_cpus=cpus,
        num_gpus=req.gpus or None,
    )
    return data.map_batches(
        stage_part,
        num_cpus=STORAGE_TASK_CPUS,  # writing waits on storage too
        compute=ray.data.TaskPoolStrategy(size=io_tasks(req.workers)),
        batch_size=None,
        batch_format="pyarrow",
        fn_kwargs={"output_url": req.output.url, "run_id": committer.run_id,
                   "schema_ipc": committer.schema.serialize().to_pybytes(),
                   "storage_options": dict(req.output.storage_options)},
    )


#: an archive's encoder batches (one part each): at most this many files or bytes
ARCHIVE_BLOCK_FILES, ARCHIVE_BLOCK_BYTES = 1024, 64 * 2**20


def archive_blocks(files: list[InputFile]) -> list[list[str]]:
    """Paths in blocks of at most ``ARCHIVE_BLOCK_FILES`` files and ``ARCHIVE_BLOCK_BYTES`` bytes (a
    larger file alone): the part per block stays large, an actor's memory bounded."""
    blocks: list[list[str]] = []
    current: list[str] = []
    held = 0
    for f in files:
        if current and (len(current) >= ARCHIVE_BLOCK_FILES or held + f.size > ARCHIVE_BLOCK_BYTES):
            blocks.append(current)
            current, held = [], 0
        current.append(f.path)
        held += f.size
    if current:
        blocks.append(current)
    return blocks


def _error_descriptor(errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"file": None, "rows": 0, "size": 0, "stats": "{}", "input_bytes": 0, "payload_bytes": 0, "ids": [],
            "uris": [], "errors": json.dumps(errors)}
