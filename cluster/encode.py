"""The encoder actor of a compress job: file bytes in, latent rows (or error rows) out.

A callable class, as in Ray's batch-inference examples: the model is loaded once in
``__init__`` and every batch runs under ``torch.inference_mode()``. A file that cannot be
read becomes an error row (``error`` set); it never fails the batch.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  - pa.compute
import ray
import torch

from aecore import Compressor, Sample, UnreadableInput, get_modality, load_bundle
from aecore.archive import AUTO, FILE_CODECS, CodecContext, choose, is_learned, learned_codec_id, model_modality, route
from aecore.archive.lossy import ESTIMATE_MARGIN, best_lossy, lossy_candidates
from aecore.archive.solid import Member, eligible, pack
from cluster.metrics import ActorMetrics
from cluster.storage import relative_key

__all__ = ["AUTO", "ArchiveSettings", "EncodeBatch", "ERROR_COLUMN", "LearnedModel", "QUALITY_COLUMN", "row_id"]

ERROR_COLUMN = "error"
QUALITY_COLUMN = "quality"


@dataclass(frozen=True)
class LearnedModel:
    """A model that joins the codecs for files of its modality."""

    modality: str
    name: str
    version: int
    bundle: bytes


@dataclass(frozen=True)
class ArchiveSettings:
    """An archive: each file by the best codec for it (aecore.archive). ``modality``
    ``auto``: each file's kind from its content; a modality's name: every file is of that kind.
    Not ``lossless``: the files of a modality that may be lossy (photos, sounds) are coded by
    its model at ``rate_point`` against the classic lossy codecs at the model's quality, and kept
    exact where the exact payload is smaller; every other file exactly."""

    modality: str
    effort: str = "default"
    dictionary: bytes | None = None
    models: tuple[LearnedModel, ...] = ()
    #: the model whose analysis gives each file of its modality its query embedding (aecore.embedding)
    embedders: tuple[LearnedModel, ...] = ()
    lossless: bool = True
    rate_point: float | None = None


def row_id(key: str, sha256: str) -> str:
    """Stable id: the same file (relative key and content) gets the same id in every run."""
    return hashlib.sha256(f"{key}\0{sha256}".encode()).hexdigest()[:32]


class EncodeBatch:
    def __init__(self, bundle: bytes | ray.ObjectRef | None, model_name: str, model_version: int, root: str,
                 uri_prefix: str, quality_every: int = 8, threads: int = 1, lossless: bool | None = None,
                 job_name: str = "", rate_point: float | None = None, max_elements: int = 48 * 2**20,
                 archive: ArchiveSettings | ray.ObjectRef | None = None, effort: str = "default") -> None:
        torch.set_num_threads(max(1, threads))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if isinstance(bundle, ray.ObjectRef):  # shared once through the object store
            bundle = ray.get(bundle)
        if isinstance(archive, ray.ObjectRef):
            archive = ray.get(archive)
        self.archive = archive
        if archive is not None:  # the learned models compete with the classic codecs file by file
            self.compressor = None
            self.models = {m.modality: m for m in archive.models}
            # a lossy archive: a lossy modality's model codes its files lossy (its exact candidates are
            # the classic ones: the learned exact payload is the costliest and the largest there)
            self.lossy_models = {} if archive.lossless else {
                m.modality: load_bundle(m.bundle, lossless=False, rate_point=archive.rate_point)
                for m in archive.models if get_modality(m.modality).lossy}
            self.ctx = CodecContext(zstd_dictionary=archive.dictionary, effort=archive.effort, compressors={
                m.modality: load_bundle(m.bundle, lossless=True) for m in archive.models
                if m.modality not in self.lossy_models})
            self.kind = None if archive.modality == AUTO else archive.modality
            self.embedders = {m.modality: load_bundle(m.bundle) for m in archive.embedders}
        else:
            self.compressor = load_bundle(bundle, device=device, lossless=lossless, rate_point=rate_point)
            self.modality = self.compressor.modality
            # lossy: the classic lossy codecs compete with the model file by file (aecore.archive.lossy)
            self.lossy = [] if self.compressor.lossless else lossy_candidates(self.modality.name, effort)
        self.effort = effort
        self._hints: dict[str, int] = {}  # per classic codec, the setting the last photo needed
        self.model_name = model_name
        self.model_version = model_version
        self.root = root
        self.uri_prefix = uri_prefix
        self.quality_every = quality_every
        #: values (channels x positions) decoded and encoded at once: bounds an actor's memory
        self.max_elements = max_elements
        self.metrics = ActorMetrics({"model": f"{model_name}@{model_version}", "job_name": job_name})

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        table = self._archive(batch) if self.archive is not None else self._encode(batch)
        encoded = table.column(ERROR_COLUMN).null_count  # rows without an error
        self.metrics.inc("aec_encoder_items", encoded)
        self.metrics.inc("aec_encoder_errors", table.num_rows - encoded)
        self.metrics.inc("aec_encoder_bytes_in", float(pa.compute.sum(table.column("bytes")).as_py() or 0))
        out_bytes = pa.compute.sum(pa.compute.binary_length(table.column("payload"))).as_py()
        self.metrics.inc("aec_encoder_bytes_out", float(out_bytes or 0))
        self.metrics.observe("aec_encoder_batch_seconds", time.perf_counter() - started)
        return table

    def _archive(self, batch: pa.Table) -> pa.Table:
        """Rows of a batch in an exact archive: each file routed to its kind and coded by the
        smallest codec whose decode gives back its very bytes."""
        rows: list[dict] = []
        members: list[Member] = []  # files a general-purpose codec won: they may share a solid block
        learned: set[int] = set()  # those of them a learned model won: blocks are tried with and without them
        errors = batch.column("read_error").to_pylist() if "read_error" in batch.column_names else None
        n = batch.num_rows
        tree = {c: batch.column(c).to_pylist() if c in batch.column_names else [None] * n
                for c in ("entry", "link", "mode", "mtime_ns")}
        for k, (path, data) in enumerate(zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist())):
            key = relative_key(path, self.root)
            entry = {"entry": tree["entry"][k] or "file", "link": tree["link"][k], "mode": tree["mode"][k],
                     "mtime_ns": tree["mtime_ns"][k]}
            if data is None:
                rows.append({"id": row_id(key, ""), "uri": self.uri_prefix + path, "key": key, "sha256": None, "bytes": 0,
                             ERROR_COLUMN: errors[k] if errors else "read: no data", QUALITY_COLUMN: None, **entry})
                continue
            if entry["entry"] != "file":  # a link (its target) or a folder: nothing to code
                digest = hashlib.sha256(f"{entry['entry']}:{entry['link'] or ''}".encode()).hexdigest()
                rows.append({"id": row_id(key, digest), "uri": self.uri_prefix + path, "key": key, "sha256": digest,
                             "bytes": 0, "modality": "bytes", "codec": entry["entry"], "payload": b"",
                             ERROR_COLUMN: None, QUALITY_COLUMN: None, **entry})
                continue
            digest = hashlib.sha256(data).hexdigest()
            kind = self.kind or route(key, data)
            row = {"id": row_id(key, digest), "uri": self.uri_prefix + path, "key": key, "sha256": digest,
                   "bytes": len(data), "modality": kind, ERROR_COLUMN: None, QUALITY_COLUMN: None, **entry}
            rows.append(row)
            try:
                choice = choose(data, kind, self.ctx)
            except Exception as exc:  # noqa: BLE001 - becomes an error row
                row[ERROR_COLUMN] = f"encode: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                continue
            model = self.models.get(kind) if choice.learned else None
            row.update(codec=choice.codec, payload=choice.payload, model=model.name if model else "",
                       model_version=model.version if model else 0, latent=self._embed(kind, data))
            if kind in self.lossy_models and self._lossy(row, kind, data):
                continue
            if FILE_CODECS[choice.codec].solid and eligible(data, len(choice.payload)):
                members.append(Member(len(rows) - 1, key, data, len(choice.payload)))
                if choice.learned:
                    learned.add(len(rows) - 1)
            if int(row["id"][:8], 16) % self.quality_every == 0:
                # the file's best classic codec on its own (no collection dictionary): what aec is measured against
                alone = min(v for k, v in choice.sizes.items() if k != "zstd-dict" and not k.startswith("aec-"))
                row[QUALITY_COLUMN] = json.dumps({"exact": 1.0, "bits_per_byte": 8.0 * len(choice.payload) / max(1, len(data)),
                                                  "learned": float(choice.learned), "classic_alone_bytes": alone})
        for block in pack(members, self.ctx, frozenset(learned)):
            holder = rows[block.members[0]]["id"]
            model = self.models.get(model_modality(block.codec) or "")  # a block coded after the text model's primer
            for i, offset in zip(block.members, block.offsets):
                rows[i].update(codec=block.codec, payload=b"", solid=holder, offset=offset,
                               model=model.name if model else "", model_version=model.version if model else 0)
                if rows[i][QUALITY_COLUMN]:  # a file the learned model won alone, coded smaller in the block
                    rows[i][QUALITY_COLUMN] = json.dumps({**json.loads(rows[i][QUALITY_COLUMN]),
                                                          "learned": float(model is not None)})
            rows[block.members[0]]["payload"] = block.payload
        return pa.table({
            "id": [r["id"] for r in rows],
            "uri": [r["uri"] for r in rows],
            "key": [r["key"] for r in rows],
            "sha256": [r["sha256"] for r in rows],
            "modality": [r.get("modality", "bytes") for r in rows],
            "model": [r.get("model", "") for r in rows],
            "model_version": pa.array([r.get("model_version", 0) for r in rows], pa.int32()),
            "codec": [r.get("codec", "") for r in rows],
            "bytes": pa.array([r["bytes"] for r in rows], pa.int64()),
            "shape": pa.array([r.get("shape", []) for r in rows], pa.list_(pa.int32())),
            "payload": pa.array([r.get("payload", b"") for r in rows], pa.binary()),
            "latent": pa.array([r.get("latent", []) for r in rows], pa.list_(pa.float32())),
            ERROR_COLUMN: pa.array([r[ERROR_COLUMN] for r in rows], pa.string()),
            QUALITY_COLUMN: pa.array([r[QUALITY_COLUMN] for r in rows], pa.string()),
            "entry": [r["entry"] for r in rows],
            "link": pa.array([r["link"] for r in rows], pa.string()),
            "mode": pa.array([r["mode"] for r in rows], pa.int32()),
            "mtime_ns": pa.array([r["mtime_ns"] for r in rows], pa.int64()),
            "solid": pa.array([r.get("solid") for r in rows], pa.string()),
            "offset": pa.array([r.get("offset") for r in rows], pa.int64()),
        })

    def _lossy(self, row: dict, kind: str, data: bytes) -> bool:
        """A file of a lossy archive coded lossy: the model's payload at its rate point, or the
        smallest classic lossy payload at least as good, whichever is smaller — unless the exact
        payload already in ``row`` is smaller than both (then the row stays exact). A file the
        model cannot read or code stays exact too."""
        compressor = self.lossy_models[kind]
        metric = compressor.modality.gate_metric[0]
        try:
            sample = compressor.load(data)
            [encoded] = compressor.encode([sample], [True], estimate=True)
        except Exception:  # noqa: BLE001 - e.g. a palette sprite the model does not code: exact
            return False
        if encoded.quality is None or metric not in encoded.quality:
            return False
        learned = {"payload": encoded.payload}
        quality = self._against_classic(learned, sample, encoded.quality, compressor, exact_bytes=len(row["payload"]))
        if quality is None:
            return False
        model = self.models[kind]
        row.update(codec=learned.get("codec", learned_codec_id(kind)), payload=learned["payload"],
                   model=learned.get("model", model.name), model_version=learned.get("model_version", model.version),
                   shape=list(sample.shape), **{QUALITY_COLUMN: json.dumps({**quality, "exact_bytes": len(row["payload"])})})
        return True

    def _embed(self, kind: str, data: bytes) -> list[float]:
        """The file's query embedding by its modality's model; none for a kind without one, or a
        file the model's modality cannot read (a classic codec stored it all the same)."""
        embedder = self.embedders.get(kind)
        if embedder is None:
            return []
        try:
            return embedder.embed([embedder.modality.load(data)])[0].tolist()
        except Exception:  # noqa: BLE001 - an embedding is a query aid, never a reason to fail a file
            return []

    def _encode(self, batch: pa.Table) -> pa.Table:
        """Rows of a batch; samples are decoded and encoded in groups of at most ``max_elements``
        values (a 4000x4000 photo in a 56 KB PNG counts as what it decodes to, not its size)."""
        rows: list[dict] = []
        pending: list[tuple[int, Sample]] = []
        held = 0
        errors = batch.column("read_error").to_pylist() if "read_error" in batch.column_names else None
        for k, (path, data) in enumerate(zip(batch.column("path").to_pylist(), batch.column("bytes").to_pylist())):
            key = relative_key(path, self.root)
            if data is None:  # the read step could not read it: an error row, never a crash
                rows.append({"id": row_id(key, ""), "uri": self.uri_prefix + path, "key": key, "sha256": None, "bytes": 0,
                             ERROR_COLUMN: errors[k] if errors else "read: no data", QUALITY_COLUMN: None})
                continue
            digest = hashlib.sha256(data).hexdigest()
            row = {"id": row_id(key, digest), "uri": self.uri_prefix + path, "key": key, "sha256": digest, "bytes": len(data),
                   ERROR_COLUMN: None, QUALITY_COLUMN: None}
            rows.append(row)
            try:
                sample = self.compressor.load(data)
            except UnreadableInput as exc:
                row[ERROR_COLUMN] = f"decode: {exc}"
                continue
            if pending and held + sample.x.size > self.max_elements:
                self._encode_group(rows, pending)
                pending, held = [], 0
            pending.append((len(rows) - 1, sample))
            held += sample.x.size
        if pending:
            self._encode_group(rows, pending)
        return self._table(rows)

    def _encode_group(self, rows: list[dict], group: list[tuple[int, Sample]]) -> None:
        # against classic lossy codecs every file's learned quality is the target: each is measured
        measure = [bool(self.lossy) or int(rows[i]["id"][:8], 16) % self.quality_every == 0 for i, _ in group]
        samples = [s for _, s in group]
        try:
            encoded = self.compressor.encode(samples, measure, estimate=bool(self.lossy))
        except Exception:  # one bad sample must not sink the group: retry one by one
            encoded = []
            for (i, sample), m in zip(group, measure):
                try:
                    encoded.extend(self.compressor.encode([sample], [m], estimate=bool(self.lossy)))
                except Exception as exc:  # noqa: BLE001 - becomes an error row
                    rows[i][ERROR_COLUMN] = f"encode: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    encoded.append(None)
        for (i, sample), enc in zip(group, encoded):
            if enc is None:
                continue
            rows[i].update(shape=list(sample.shape), payload=enc.payload, latent=enc.latent)
            quality = enc.quality
            if self.lossy and quality is not None and self.modality.gate_metric[0] in quality:
                quality = self._against_classic(rows[i], sample, quality, self.compressor)
            if quality is not None:
                rows[i][QUALITY_COLUMN] = json.dumps(quality)

    def _against_classic(self, row: dict, sample: Sample, quality: dict, compressor: Compressor,
                         exact_bytes: int | None = None) -> dict | None:
        """The smallest classic lossy payload at least as good as the learned one (by the
        modality's quality: PSNR for photos, SNR for sound) replaces it; the row's quality says
        what each codec needed and what was kept. ``exact_bytes``: the file's exact payload, which
        a lossy one must also undercut (None returned: the exact one is smaller than both).

        ``quality`` is the learned codec's estimate (float synthesis): the classic codecs must
        beat it by ``ESTIMATE_MARGIN``, more than the estimate's measured error, and where the
        learned payload stays its quality is measured again as decode restores it."""
        metric = compressor.modality.gate_metric[0]
        bound = len(row["payload"]) if exact_bytes is None else min(len(row["payload"]), exact_bytes)
        choice, sizes = best_lossy(sample.x, sample.info, quality[metric] + ESTIMATE_MARGIN[metric],
                                   bound, self.effort, compressor.modality.name, self._hints)
        classic = {f"{codec}_bytes": n for codec, n in sizes.items()}
        if choice is None:
            if exact_bytes is not None and exact_bytes <= len(row["payload"]):
                return None
            exact = compressor.measure(sample, row["payload"])
            return {**exact, "learned_bytes": len(row["payload"]), **classic, "learned": 1.0}
        quality = {**quality, "learned_bytes": len(row["payload"]), **classic}
        unit, count = sample.info.rate_unit()
        row.update(payload=choice.payload, codec=choice.codec, model="", model_version=0)
        # the learned codec's figures stay beside the winner's; the ones the winner was not measured by go
        learned = {f"learned_{k}": v for k, v in quality.items() if k in ("psnr", "ms_ssim", "snr", "lsd")}
        return {**{k: v for k, v in quality.items() if k not in ("ms_ssim", "lsd")}, **learned, metric: choice.quality,
                unit: 8.0 * len(choice.payload) / count, "learned": 0.0,
                # a classic codec with a learned stage (a post-filter) won: the share learned parts win counts it
                "learned_stage": float(is_learned(choice.codec))}

    def _table(self, rows: list[dict]) -> pa.Table:
        size = int(np.prod(self.compressor.query_latent_shape))
        latent = np.zeros((len(rows), size), dtype=np.float32)
        for i, r in enumerate(rows):
            if r.get("latent") is not None:
                latent[i] = r["latent"]
        return pa.table({
            "id": [r["id"] for r in rows],
            "uri": [r["uri"] for r in rows],
            "key": [r["key"] for r in rows],
            "sha256": [r["sha256"] for r in rows],
            "modality": [self.modality.name] * len(rows),
            "model": [r.get("model", self.model_name) for r in rows],
            "model_version": pa.array([r.get("model_version", self.model_version) for r in rows], pa.int32()),
            "codec": [r.get("codec", learned_codec_id(self.modality.name)) for r in rows],
            "bytes": pa.array([r["bytes"] for r in rows], pa.int64()),
            "shape": pa.array([r.get("shape", []) for r in rows], pa.list_(pa.int32())),
            "payload": pa.array([r.get("payload", b"") for r in rows], pa.binary()),
            "latent": pa.ListArray.from_arrays(pa.array(np.arange(len(rows) + 1, dtype=np.int32) * size),
                                               pa.array(latent.reshape(-1))),
            ERROR_COLUMN: pa.array([r[ERROR_COLUMN] for r in rows], pa.string()),
            QUALITY_COLUMN: pa.array([r[QUALITY_COLUMN] for r in rows], pa.string()),
            "entry": ["file"] * len(rows),
            "link": pa.nulls(len(rows), pa.string()),
            "mode": pa.nulls(len(rows), pa.int32()),
            "mtime_ns": pa.nulls(len(rows), pa.int64()),
            "solid": pa.nulls(len(rows), pa.string()),
            "offset": pa.nulls(len(rows), pa.int64()),
        })
