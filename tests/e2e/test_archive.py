"""A whole mixed folder archived exactly and restored as tar restores it (issue 23): every file
(photos, sounds, text, binaries, empty files, dotfiles, corrupt media), links as links, folders,
modes and mtimes — locally and on S3 — each file by the best codec for it."""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import duckdb
import pytest

import aec
from cluster.storage import describe_tree
from jobs.sample_data import PHOTOS, _photo_dir, make_audio_collection, make_photo_collection, make_text_collection
from tests import tables
from tests.conftest import run_cli

pytestmark = pytest.mark.e2e


def _mixed(root: Path) -> Path:
    make_photo_collection(root / "photos", 6, sizes=(48, 64), seed=5, jpeg_every=2)
    make_text_collection(root / "docs" / "src", 8, max_bytes=5000, seed=2)
    make_audio_collection(root / "sounds", 3, seed=6)
    jpeg = next(p for p in PHOTOS if p.endswith(".jpg"))
    (root / "photos" / "full.jpg").write_bytes((_photo_dir() / jpeg).read_bytes())
    (root / "data.gz").write_bytes(gzip.compress(b"gzip inside an archive\n" * 200))
    (root / "blob.bin").write_bytes(os.urandom(4096))
    (root / "empty").write_bytes(b"")
    (root / ".env").write_text("A=1\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really" * 20)
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "text-named.jpg").write_text("a text file with a photo's name\n")
    (root / "empty-dir" / "inner").mkdir(parents=True)
    (root / "link-to-readme").symlink_to("docs/src")
    (root / "dangling").symlink_to("nowhere")
    os.chmod(root / "blob.bin", 0o600)
    os.chmod(root / "docs", 0o750)
    os.utime(root / "data.gz", ns=(981_173_106_000_000_000, 981_173_106_000_000_000))
    return root


def test_a_mixed_folder_restores_identical(ray_local, tmp_path):
    src = _mixed(tmp_path / "in")
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: mix\ninput: {src}\noutput: {tmp_path}/out\nregistry: {tmp_path}/reg\n"
                    "batch_size: 8\nworkers: 1\nquality_every: 1\n")
    out = run_cli("compress", str(spec))
    assert "completed" in out and "completed with" not in out  # corrupt media are files too: archived
    before = describe_tree(src)
    ds = tables.dataset(tmp_path / "out")
    assert ds.metadata["modality"] == "auto" and ds.metadata["lossless"] is True
    assert ds.count_rows() == len(before)
    rows = {r["key"]: r for r in ds.dataset.to_table(columns=["key", "modality", "codec", "bytes", "payload_bytes",
                                                               "entry"]).to_pylist()}
    assert rows["photos/full.jpg"]["codec"] == "jxl-jpeg"
    assert rows["photos/full.jpg"]["payload_bytes"] < rows["photos/full.jpg"]["bytes"]
    assert rows["link-to-readme"]["entry"] == "symlink" and rows["empty-dir/inner"]["entry"] == "dir"
    assert rows["text-named.jpg"]["modality"] == "text" and rows["broken.wav"]["modality"] == "audio"
    assert any(r["codec"] in ("flac-wav", "lms2-wav") for r in rows.values())  # WAVs by FLAC or adaptive prediction
    solid = [r for r in rows.values() if r["codec"].startswith("solid-")]
    assert len(solid) >= 8 and sum(r["payload_bytes"] > 0 for r in solid) < len(solid)  # the text files share a block
    for r in rows.values():  # no file coded alone above itself plus its codec header
        assert r["codec"].startswith("solid-") or r["payload_bytes"] <= r["bytes"] + 16, r

    # every photo, sound and text gets a compact query embedding from its modality's zoo model
    embeddings = ds.metadata["embeddings"]
    assert {m: e["model"] for m, e in embeddings.items()} == {
        "audio": "zoo:audio-small@1", "image": "zoo:image-small@1", "text": "zoo:text-cm@1"}
    latents = {r["key"]: r["latent"] for r in ds.dataset.to_table(columns=["key", "latent"]).to_pylist()}
    size = {m: math.prod(e["shape"]) for m, e in embeddings.items()}
    assert size == {"image": 128, "audio": 128, "text": 64}
    for key, r in rows.items():
        readable = r["entry"] == "file" and r["modality"] in size and not key.startswith("broken")
        assert len(latents[key]) == (size[r["modality"]] if readable else 0), key
    embedded = ds.dataset.to_table(columns=["key", "modality", "latent"])  # noqa: F841 - DuckDB reads it by name
    near = duckdb.sql(  # the nearest photo to one photo, by its embedding: a query, no decode
        "SELECT key FROM embedded WHERE modality = 'image' AND len(latent) > 0 AND key != 'photos/full.jpg' "
        "ORDER BY list_cosine_similarity(latent, (SELECT latent FROM embedded WHERE key = 'photos/full.jpg')) DESC "
        "LIMIT 1").fetchall()
    assert near and near[0][0].startswith("photos/")

    report = json.loads((tmp_path / "out" / "_aec" / "report.json").read_text())
    assert report["summary"]["ratio (input / on disk)"] == pytest.approx(
        report["summary"]["input_bytes"] / report["summary"]["stored_bytes"])
    won = {r["codec"] for r in report["codecs"]}
    assert "jxl-jpeg" in won and won & {"flac-wav", "lms2-wav"}
    assert "jxl-jpeg" in (tmp_path / "out" / "_aec" / "report.html").read_text()
    inspect = run_cli("inspect", str(tmp_path / "out"))
    totals = tables.totals(tmp_path / "out")
    assert totals["ratio"] == pytest.approx(totals["input_bytes"] / totals["stored_bytes"])
    assert "ratio (input / on disk)" in inspect and "jxl-jpeg" in inspect

    run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "restored"), "--workers", "0")
    assert describe_tree(tmp_path / "restored") == before  # bytes, modes, mtimes, links: as they were

    archive = aec.open(str(tmp_path / "out"))  # the API decodes what a query picked, codec by codec
    chosen = archive.dataset.to_table(columns=["id", "key", "payload", "entry"]).to_pylist()
    files = [r for r in chosen if r["entry"] == "file"]
    restored = archive.decode([r["id"] for r in files])
    assert all(data == (src / r["key"]).read_bytes() for r, data in zip(files, restored))


def test_an_unreadable_entry_is_an_error_row_and_the_rest_restores(ray_local, tmp_path):
    src = tmp_path / "in"
    make_text_collection(src, 3, max_bytes=1000)
    os.mkfifo(src / "pipe")
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: mix\ninput: {src}\noutput: {tmp_path}/out\nregistry: {tmp_path}/reg\n"
                    "workers: 1\n")
    assert "completed with 1 errors" in run_cli("compress", str(spec))
    [error] = tables.errors(tmp_path / "out")
    assert error["uri"].endswith("/pipe") and "FIFO" in error["reason"]


def test_a_mixed_folder_on_s3_restores_identical(ray_local, s3, tmp_path):
    import s3fs

    src = tmp_path / "in"
    make_photo_collection(src / "photos", 3, sizes=(48,), seed=7, jpeg_every=2)
    make_text_collection(src / "docs", 4, max_bytes=3000)
    (src / "blob.bin").write_bytes(os.urandom(1000))
    fs = s3fs.S3FileSystem()
    fs.mkdir("mixed")
    fs.put(f"{src}/", "mixed/in/", recursive=True)
    spec = tmp_path / "c.yaml"
    spec.write_text("kind: compress\nname: mix\ninput: s3://mixed/in\noutput: s3://mixed/out\n"
                    "registry: s3://mixed/reg\nworkers: 1\nbatch_size: 4\n")
    run_cli("compress", str(spec))
    run_cli("decode", "s3://mixed/out", "--out", str(tmp_path / "restored"), "--workers", "0",
            "--registry", "s3://mixed/reg")
    want = {str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    got = {str(p.relative_to(tmp_path / "restored")): p.read_bytes()
           for p in (tmp_path / "restored").rglob("*") if p.is_file()}
    assert got == want


def test_one_file_of_a_solid_block_restores_alone(ray_local, tmp_path):
    """A member whose block sits in another row is restored by key (to stdout) and by --where on
    Ray workers: the holder row is fetched from the table, the member checked by its sha256."""
    src = tmp_path / "in"
    make_text_collection(src, 10, max_bytes=3000, seed=4)
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: solid\ninput: {src}\noutput: {tmp_path}/out\nregistry: {tmp_path}/reg\n"
                    "workers: 1\n")
    run_cli("compress", str(spec))
    rows = tables.dataset(tmp_path / "out").dataset.to_table(columns=["id", "key", "solid", "payload_bytes"]).to_pylist()
    members = [r for r in rows if r["solid"] is not None and r["solid"] != r["id"]]
    assert members and all(r["payload_bytes"] == 0 for r in members)
    member = members[-1]
    from typer.testing import CliRunner

    from jobs.cli import app

    result = CliRunner().invoke(app, ["decode", str(tmp_path / "out"), "--key", member["key"], "--out", "-"])
    assert result.exit_code == 0 and result.stdout_bytes == (src / member["key"]).read_bytes()
    run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "one"), "--workers", "1",
            "--where", f"key = '{member['key']}'")
    assert [p.name for p in (tmp_path / "one").rglob("*") if p.is_file()] == [Path(member["key"]).name]
    assert (tmp_path / "one" / member["key"]).read_bytes() == (src / member["key"]).read_bytes()


def test_a_lossy_archive_codes_photos_and_sounds_lossy_and_the_rest_exactly(ray_local, tmp_path):
    """``modality: auto`` with ``lossless: false``: each photo and sound by the smallest of its zoo
    model at its rate point, the classic lossy codecs at the model's quality, and its exact payload;
    text and other files exactly. Lossy rows restore as their modality's format beside their key."""
    from aecore import get_modality
    from aecore.archive import is_learned

    src = tmp_path / "in"
    make_photo_collection(src / "photos", 4, sizes=(64,), seed=3, jpeg_every=2)
    make_audio_collection(src / "sounds", 2, seed=1)
    make_text_collection(src / "docs", 4, max_bytes=3000, seed=8)
    (src / "blob.bin").write_bytes(os.urandom(2000))
    spec = tmp_path / "c.yaml"
    spec.write_text(f"kind: compress\nname: lossy\ninput: {src}\noutput: {tmp_path}/out\nregistry: {tmp_path}/reg\n"
                    "workers: 1\nbatch_size: 8\nlossless: false\n")
    out = run_cli("compress", str(spec))
    assert "photos and sounds lossy" in out
    ds = tables.dataset(tmp_path / "out")
    assert ds.metadata["lossless"] is False
    assert {m: v["ref"] for m, v in ds.metadata["models"].items()} == {
        "audio": "zoo:audio-small@1", "image": "zoo:image-small@1", "text": "zoo:text-cm@1"}
    rows = ds.dataset.to_table(columns=["key", "modality", "codec", "bytes", "payload_bytes", "quality",
                                        "model"]).to_pylist()
    media = [r for r in rows if r["modality"] in ("image", "audio")]
    lossy = [r for r in media if r["codec"] in ("aec-image", "aec-audio", "webp", "avif", "jxl", "opus")]
    assert len(lossy) == len(media) == 6  # every photo and sound is smaller lossy than exact here
    for r in lossy:
        q = json.loads(r["quality"])
        metric = get_modality(r["modality"]).gate_metric[0]
        assert r["payload_bytes"] <= q["exact_bytes"] and q[metric] >= q.get(f"learned_{metric}", q[metric]) - 1e-9
        assert (r["model"] != "") == r["codec"].startswith("aec-"), r
    for r in rows:  # text and bytes: exact codecs only
        if r["modality"] in ("text", "bytes") and r["codec"] not in ("dir", "symlink"):
            assert r["codec"] not in ("webp", "avif", "jxl", "opus") and not r["codec"].startswith("aec-i")
    # the report counts what the learned codecs won (a learned winner once broke it: no report at all)
    report = json.loads((tmp_path / "out" / "_aec" / "report.json").read_text())
    learned = sum(r["bytes"] for r in rows if is_learned(r["codec"]))  # solid-aec-cm blocks, post-filters too
    assert report["summary"]["learned share of bytes"] == pytest.approx(
        learned / report["summary"]["input_bytes"], abs=1e-4)
    assert {c["codec"] for c in report["codecs"]} >= {r["codec"] for r in lossy}
    shown = run_cli("inspect", str(tmp_path / "out"))
    assert "files and bytes by modality and codec" in shown
    assert "report picture" not in shown  # an archive's report has no picture to point to

    run_cli("decode", str(tmp_path / "out"), "--out", str(tmp_path / "restored"), "--workers", "0")
    restored = tmp_path / "restored"
    for p in src.rglob("*"):
        if not p.is_file():
            continue
        key = str(p.relative_to(src))
        row = next(r for r in rows if r["key"] == key)
        if row["modality"] in ("text", "bytes"):
            assert (restored / key).read_bytes() == p.read_bytes(), key
            continue
        modality = get_modality(row["modality"])
        target = restored / (key if key.endswith(modality.output_suffix) else key + modality.output_suffix)
        quality = modality.quality(modality.load(p.read_bytes()).x, modality.load(target.read_bytes()).x)
        metric = modality.gate_metric[0]
        assert quality[metric] >= json.loads(row["quality"])[metric] - 0.1, (key, quality)
