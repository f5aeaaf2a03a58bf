"""train -> compress -> inspect -> decode on a few dozen real photo crops, on a local Ray instance,
and the output read back by pyarrow (without Ray), DuckDB and Polars."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aecore import build_model, dump_bundle
from jobs.cli import app
from jobs.registry import ModelRegistry
from tests import tables

pytestmark = pytest.mark.e2e

# A model that learned anything reconstructs these crops well above this; an untrained or
# broken one (random weights, wrong decoder) lands near 10 dB.
PSNR_FLOOR_DB = 18.0


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def job(trained, photos, tmp_path_factory):
    """Compress once with the session's model: the collection plus a corrupt and an empty file."""
    root = tmp_path_factory.mktemp("job")
    collection = root / "photos"
    shutil.copytree(photos, collection)
    (collection / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (collection / "empty.jpg").write_bytes(b"")
    (collection / "notes.txt").write_text("not an image: ignored by extension")
    compress = root / "compress.yaml"
    compress.write_text(
        f"kind: compress\nname: c\nmodality: image\ninput: {collection}\noutput: {root}/latents\n"
        f"registry: {trained['registry']}\nmodel: photos\nbatch_size: 8\nworkers: 2\ngpus: 0\nquality_every: 1\n"
    )
    compress_out = run("compress", str(compress))
    return {"root": root, "collection": collection, "output": root / "latents", "registry": trained["registry"],
            "train_out": trained["output"], "compress_out": compress_out, "compress_spec": compress}


def test_train_registers_a_version_with_lineage(job):
    assert "registered photos@1" in job["train_out"]
    mv = ModelRegistry(str(job["registry"])).resolve("photos")
    assert mv.version == 1
    assert mv.info["lineage"]["files"] == 36
    assert mv.info["heldout"]["files"] >= 1 and mv.info["heldout"]["psnr"] > 0  # measured on files it never saw
    assert mv.info["metrics"]["final"] is True
    assert any(Path(job["registry"], "_runs").iterdir()), "Ray Train checkpoints live in the registry's storage"


def test_compress_writes_rows_and_error_rows(job):
    out = job["compress_out"]
    assert "completed with 2 errors" in out
    got = tables.totals(job["output"])
    assert got["rows"] == 36 and got["errors"] == 2
    errors = tables.errors(job["output"])
    assert sorted(Path(e["uri"]).name for e in errors) == ["corrupt.png", "empty.jpg"]
    assert all(e["stage"] == "decode" and e["reason"] for e in errors)
    # every part under the table is committed: none left over by the job
    assert len(list(job["output"].glob("part-*.parquet"))) == len(tables.dataset(job["output"]).dataset.files)


def test_each_photo_is_stored_by_the_smallest_codec_at_the_learned_quality(job):
    """Lossy (issue 23 item 2): WebP, AVIF and JPEG XL at the smallest setting whose PSNR is at
    least the model's compete with it; the learned payload stays where it is smaller. Decode
    restores every row, whichever codec won it, at the quality recorded."""
    rows = tables.dataset(job["output"]).dataset.to_table(columns=["key", "codec", "model", "payload_bytes",
                                                                   "quality"]).to_pylist()
    codecs = ("webp", "avif", "jxl", "webp-pf", "avif-pf", "jxl-pf")  # the classic ones, and with their post-filters
    assert {r["codec"] for r in rows} <= {"aec-image", *codecs}
    for r in rows:
        q = json.loads(r["quality"])  # every row measured: the target of the classic codecs is its own
        assert r["payload_bytes"] <= q["learned_bytes"]
        classic = {k.removesuffix("_bytes"): v for k, v in q.items() if k.removesuffix("_bytes") in codecs}
        assert {"webp", "webp-pf"} <= set(classic)  # tried on every photo
        if r["codec"] == "aec-image":
            assert q["learned"] == 1.0 and r["model"] == "photos" and all(v >= r["payload_bytes"] for v in classic.values())
        else:
            assert q["learned"] == 0.0 and r["model"] == "" and q["psnr"] >= q["learned_psnr"]
            assert r["payload_bytes"] == min(classic.values())
            assert q["learned_stage"] == float(r["codec"].endswith("-pf"))
    restored = job["root"] / "restored-lossy"
    # as a user runs it, on Ray Data actors: one progress bar, none of Ray's own log lines (issue 23 item 5)
    done = subprocess.run([sys.executable, "-c", "from jobs.cli import app; app()", "decode", str(job["output"]),
                           "--out", str(restored), "--originals", str(job["collection"]), "--workers", "2"],
                          capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "logging_progress" not in out and "streaming_executor" not in out, out  # Ray Data's lines: in its log
    assert len(list(restored.rglob("*.png"))) == 36 and "compared with originals" in out
    won = [json.loads(r["quality"])["psnr"] for r in rows]
    assert tables.totals(job["output"])["quality"]["psnr"] == pytest.approx(float(np.mean(won)))


def test_compress_writes_a_report_a_person_can_read(job):
    from PIL import Image

    meta = job["output"] / "_aec"
    report = json.loads((meta / "report.json").read_text())
    assert report["summary"]["rows"] == 36 and report["errors"]["count"] == 2
    assert {Path(e["uri"]).name for e in report["errors"]["first"]} == {"corrupt.png", "empty.jpg"}
    assert report["throughput"]["rows_per_second"] > 0 and report["throughput"]["timeline"][-1]["rows"] == 36
    rd = report["rate_distortion"]
    assert rd["metric"] == "psnr" and rd["rate_unit"] == "bpp" and rd["samples"] >= 1
    assert rd["aec"]["psnr"] > 15 and 0 < rd["aec"]["bpp"] < 2
    assert {"jpeg q5", "webp q50"} <= set(rd["classic"]) and all("psnr" in p for p in rd["classic"].values())
    picture = Image.open(meta / "report.png")
    assert picture.size[0] >= 800 and picture.size[1] >= 600
    assert np.asarray(picture.convert("L")).std() > 10  # not a blank page
    page = (meta / "report.html").read_text()
    assert "src='report.png'" in page and "corrupt.png" in page  # linked beside it, not embedded twice
    assert (meta / "report.png").stat().st_size + len(page) < 400_000  # thumbnails in a palette: small
    assert "report.html" in job["compress_out"]
    inspect = run("inspect", str(job["output"]))
    assert "report.html" in inspect and "rows/s" in inspect


def test_deltalake_pyarrow_duckdb_and_polars_read_the_table_without_ray(job):
    code = f"""
import sys, json
import pyarrow as pa
from pyarrow.fs import LocalFileSystem, SubTreeFileSystem
from deltalake import DeltaTable
root = {str(job['output'])!r}
dt = DeltaTable(root)
t = dt.to_pyarrow_dataset(filesystem=SubTreeFileSystem(root, LocalFileSystem())).to_table()
assert "ray" not in sys.modules and "cluster" not in sys.modules
s = t.schema
assert s.field("latent").type == pa.list_(pa.field("element", pa.float32())), s.field("latent").type
assert s.field("payload").type == pa.binary()
assert s.field("shape").type == pa.list_(pa.field("element", pa.int32()))
meta = {{k.removeprefix("aec."): json.loads(v) for k, v in dt.metadata().configuration.items() if k.startswith("aec.")}}
import duckdb, polars as pl
latents = dt.to_pyarrow_dataset(filesystem=SubTreeFileSystem(root, LocalFileSystem()))
duck = duckdb.sql("SELECT count(DISTINCT id) FROM latents").fetchall()[0][0]
polars = pl.scan_delta(root).select(pl.col("id").n_unique()).collect().item()
assert "ray" not in sys.modules and "cluster" not in sys.modules
print(json.dumps({{"rows": t.num_rows, "names": s.names, "meta": meta, "ids": len(set(t.column("id").to_pylist())),
                  "latent": len(t.column("latent")[0]), "duckdb": duck, "polars": polars}}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert out["rows"] == 36 and out["ids"] == 36 and out["latent"] == 128 and out["duckdb"] == out["polars"] == 36
    assert out["names"] == ["id", "uri", "key", "sha256", "modality", "model", "model_version", "codec", "bytes", "shape",
                            "payload", "payload_bytes", "latent", "quality", "entry", "link", "mode", "mtime_ns",
                            "solid", "offset"]
    assert out["meta"]["model_ref"] == "photos@1"
    assert out["meta"]["codec"] == "mean-scale-hyperprior+checkerboard"  # the image zoo family
    assert out["meta"]["latent_shape"] == [128, 1, 1]  # the zoo model: 128 channels of a 32-px thumbnail, pooled


def test_duckdb_answers_the_issue_query(job):
    import duckdb

    latents = tables.dataset(job["output"]).dataset  # noqa: F841 - the Delta table's Arrow dataset, by name
    rows = duckdb.sql("SELECT modality, count(*), sum(bytes), sum(octet_length(payload)) FROM latents GROUP BY 1"
                      ).fetchall()
    total_in = sum(p.stat().st_size for p in job["collection"].iterdir()
                   if p.suffix != ".txt" and p.name not in ("corrupt.png", "empty.jpg"))
    assert len(rows) == 1
    modality, count, bytes_in, bytes_out = rows[0]
    assert (modality, count, bytes_in) == ("image", 36, total_in)
    assert 0 < bytes_out < bytes_in / 4


def test_polars_reads_the_same_rows(job):
    import polars as pl

    df = pl.scan_delta(str(job["output"])).collect()
    assert df.height == 36
    assert df.schema["latent"] == pl.List(pl.Float32) and df["latent"].list.len().unique().to_list() == [128]
    # the model's rows name its version; a row a classic codec won names none (0)
    assert set(df["model_version"].unique().to_list()) <= {0, 1}
    assert (df["model_version"] == 1).to_list() == (df["codec"] == "aec-image").to_list()


def test_ids_are_stable_across_runs_and_copies(job, tmp_path):
    """A copy of part of the collection, elsewhere, compressed again: the same files get the same ids."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in sorted(job["collection"].glob("*.png"))[:6]:
        shutil.copy(path, copy / path.name)
    run("compress", str(job["compress_spec"]), "--set", f"input={copy}", "--set", f"output={tmp_path}/again")
    table = tables.dataset(job["output"]).dataset.to_table(columns=["id", "key"]).to_pylist()
    first = {r["key"]: r["id"] for r in table}
    again = tables.dataset(tmp_path / "again").dataset.to_table(columns=["id", "key"]).to_pylist()
    second = {r["key"]: r["id"] for r in again}
    assert len(second) == 6 and all(first[k] == v for k, v in second.items())


def test_rerun_of_a_finished_job_encodes_nothing(job):
    out = run("compress", str(job["compress_spec"]))
    assert "skipped (already committed)" in out
    ds = tables.dataset(job["output"])
    assert ds.count_rows() == 36 and len(ds.runs()) == 2
    assert ds.runs()[-1]["rows"] == 0 and ds.runs()[-1]["skipped"] == 36
    assert ds.runs()[-1]["status"] == "completed"
    history = run("inspect", str(job["output"]), "--history")
    assert history.count("completed") == 2


def test_another_model_into_the_same_output_is_refused_in_one_line(job):
    model = build_model("image-conv", "tiny")
    mv = ModelRegistry(str(job["registry"])).register(
        "other", dump_bundle(model.uniform_prior(), "image-conv", "image"), {})
    result = CliRunner().invoke(app, ["compress", str(job["compress_spec"]), "--set", f"model={mv.ref}"])
    assert result.exit_code == 2
    assert "holds a dataset of model photos@1, not other@1" in result.output


def test_fail_on_error_exits_1_and_keeps_the_rows(job, tmp_path):
    result = CliRunner().invoke(app, ["compress", str(job["compress_spec"]), "--set", f"output={tmp_path}/strict",
                                      "--fail-on-error"])
    assert result.exit_code == 1
    assert "2 of 38 inputs could not be encoded" in result.output
    assert tables.totals(tmp_path / "strict")["rows"] == 36


def test_inspect_prints_the_summary(job):
    out = run("inspect", str(job["output"]))
    assert "photos@1" in out and "ratio" in out and "36" in out
    assert "report picture" in out  # a lossy photo job's report draws its rate-distortion points


def test_decode_restores_every_image_above_the_psnr_floor(job, tmp_path):
    out = run("decode", str(job["output"]), "--out", str(tmp_path / "restored"), "--originals", str(job["collection"]))
    files = sorted((tmp_path / "restored").iterdir())
    assert len(files) == 36
    from PIL import Image

    from cluster.decode import restore_path

    for r in tables.dataset(job["output"]).dataset.to_table(columns=["key", "shape"]).to_pylist():
        # at its key; a JPEG input comes back as a PNG beside it (photo.jpg.png)
        with Image.open(tmp_path / "restored" / restore_path(r["key"], False, ".png")) as img:
            h, w, c = r["shape"]
            assert (img.height, img.width) == (h, w)
    psnr = _psnr_from(out)
    print(f"trained model: decode PSNR {psnr:.2f} dB (floor {PSNR_FLOOR_DB})")
    assert psnr > PSNR_FLOOR_DB, out


def test_an_untrained_model_fails_the_psnr_floor(job, tmp_path):
    """The floor means something: random weights with a matching prior fall far below it."""
    model = build_model("image-conv", "tiny")
    registry = ModelRegistry(str(job["registry"]))
    mv = registry.register("untrained", dump_bundle(model.uniform_prior(), "image-conv", "image"), {})
    run("compress", str(job["compress_spec"]), "--set", f"output={tmp_path}/bad", "--set", f"model={mv.ref}")
    # the model's own quality on every file (a classic codec may store the file better: its target
    # is the model's PSNR, never below it)
    rows = [json.loads(q) for q in tables.dataset(tmp_path / "bad").dataset.to_table(columns=["quality"])
            .column("quality").to_pylist()]
    model_psnr = float(np.mean([q.get("learned_psnr", q["psnr"]) for q in rows]))
    print(f"untrained model: PSNR {model_psnr:.2f} dB (floor {PSNR_FLOOR_DB})")
    assert model_psnr < PSNR_FLOOR_DB
    assert all(q["psnr"] >= q.get("learned_psnr", q["psnr"]) for q in rows)


def test_lossless_restores_every_file_byte_for_byte(job, tmp_path):
    """PNGs are rebuilt from the coded pixels (and cost less than the file); JPEGs are stored."""
    run("compress", str(job["compress_spec"]), "--set", f"output={tmp_path}/exact", "--set", "lossless=true")
    run("decode", str(tmp_path / "exact"), "--out", str(tmp_path / "restored"))
    rows = tables.dataset(tmp_path / "exact").dataset.to_table(columns=["id", "uri", "key", "bytes", "payload", "codec",
                                                                       "solid"]).to_pylist()
    assert len(rows) == 38  # an exact archive: the corrupt and the empty file too, as they are
    for r in rows:
        restored = tmp_path / "restored" / r["key"]
        original = Path(r["uri"].removeprefix("file://")).read_bytes()
        assert restored.read_bytes() == original, r["uri"]
        assert restored.suffix == Path(r["uri"]).suffix  # the very file, under its own extension
    for r in rows:  # each by its best codec: never above the file plus its codec header
        if r["solid"] is None:
            assert len(r["payload"]) <= r["bytes"] + 16, r["key"]
    blocks: dict[str, list[int]] = {}  # a solid block: smaller than its files together
    for r in rows:
        if r["solid"] is not None:
            blocks.setdefault(r["solid"], [0, 0])
            blocks[r["solid"]][0] += len(r["payload"])
            blocks[r["solid"]][1] += r["bytes"]
    assert all(payload < size for payload, size in blocks.values())
    quality = tables.totals(tmp_path / "exact")["quality"]
    assert quality["exact"] == 1.0  # quality_every: 1
    png_in = sum(r["bytes"] for r in rows if r["uri"].endswith(".png"))
    png_out = sum(len(r["payload"]) for r in rows if r["uri"].endswith(".png"))
    print(f"lossless PNGs: {png_in} -> {png_out} bytes ({png_in / png_out:.2f}x)")
    assert png_out < png_in


def _psnr_from(output: str) -> float:
    line = next(line for line in output.splitlines() if "psnr=" in line)
    return float(line.split("psnr=")[1].split()[0].rstrip("│,"))
