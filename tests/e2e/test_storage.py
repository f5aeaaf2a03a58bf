"""Object storage, exactly-once output, resume and bad input — against a moto S3 server on
loopback and real SIGKILLs of real processes (a driver, an encoder actor, a training worker)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.dataset as pds
import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.registry import ModelRegistry
from tests.conftest import run_cli
from tests.s3 import CREDENTIALS, MotoServer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def compress_spec(path: Path, input: str, output: str, registry: str, **extra) -> Path:
    body = {"kind": "compress", "name": "c", "modality": "image", "input": input, "output": output,
            "registry": registry, "model": "photos", "batch_size": 4, "workers": 1, **extra}
    path.write_text("".join(f"{k}: {v}\n" for k, v in body.items()))
    return path


def dataset_rows(output) -> list[dict]:
    manifest = json.loads(Path(output, "_aec", "manifest.json").read_text())
    files = [str(Path(output, f["name"])) for f in manifest["files"]]
    return pds.dataset(files).to_table(columns=["id", "uri", "sha256", "model_version"]).to_pylist()


def assert_exactly_once(output, expected_uris: set[str]) -> None:
    rows = dataset_rows(output)
    assert len(rows) == len(expected_uris), (len(rows), len(expected_uris))
    assert {r["uri"] for r in rows} == expected_uris
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({(r["id"], r["sha256"], r["model_version"]) for r in rows}) == len(rows)
    # Everything in the folder is committed: no stray part a glob reader could pick up.
    manifest = json.loads(Path(output, "_aec", "manifest.json").read_text())
    assert sorted(p.name for p in Path(output).glob("*.parquet")) == sorted(f["name"] for f in manifest["files"])


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory) -> Path:
    """Larger crops, so a job runs long enough to be killed in the middle."""
    from jobs.sample_data import make_photo_collection

    out = tmp_path_factory.mktemp("big")
    make_photo_collection(out, 80, sizes=(256, 384, 512), seed=3)
    return out


# -- object storage ---------------------------------------------------------------------

def test_train_compress_decode_all_on_s3(trained, photos, s3, tmp_path, capsys):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("archive")
    fs.put(f"{photos}/", "archive/photos/", recursive=True)
    train = tmp_path / "train.yaml"
    train.write_text("kind: train\nname: t\ninput: s3://archive/photos\nregistry: s3://archive/registry\n"
                     "model: photos\narchitecture: image-conv\nepochs: 2\nworkers: 2\n")
    outputs = [run_cli("train", str(train))]
    spec = compress_spec(tmp_path / "c.yaml", "s3://archive/photos", "s3://archive/latents", "s3://archive/registry",
                         commit_every=2)
    outputs.append(run_cli("compress", str(spec)))
    outputs.append(run_cli("inspect", "s3://archive/latents"))
    outputs.append(run_cli("decode", "s3://archive/latents", "--out", str(tmp_path / "restored"),
                           "--registry", "s3://archive/registry", "--originals", "s3://archive/photos"))
    assert len(list((tmp_path / "restored").iterdir())) == 36
    assert "compared with originals │ 36" in outputs[-1]

    # Readers without Ray, straight from the bucket: pyarrow's native S3 and Polars.
    import polars as pl
    from pyarrow.fs import S3FileSystem

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    table = pds.dataset("archive/latents", filesystem=S3FileSystem(
        endpoint_override=endpoint.split("://")[1], scheme="http")).to_table()
    assert table.num_rows == 36
    df = pl.read_parquet("s3://archive/latents/*.parquet", storage_options={
        "aws_endpoint_url": endpoint, "aws_allow_http": "true", "aws_region": "us-east-1",
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]})
    assert df.height == 36 and df["uri"].str.starts_with("s3://archive/photos/").all()

    # The secret never lands anywhere aec writes or prints.
    secret = CREDENTIALS["AWS_SECRET_ACCESS_KEY"].encode()
    for key in fs.find("archive/latents") + fs.find("archive/registry"):
        if not key.endswith((".png", ".jpg")):
            assert secret not in fs.cat_file(key), key
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in "".join(outputs) + capsys.readouterr().out


def test_one_line_errors_for_storage_mistakes(trained, photos, s3, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("errs")
    fs.pipe_file("errs/texts/readme.txt", b"no images here")
    registry = str(trained["registry"])
    cases = {
        "does not exist; check the path": compress_spec(tmp_path / "a.yaml", "s3://errs/missing", str(tmp_path / "o1"), registry),
        "holds no files ending in .png": compress_spec(tmp_path / "b.yaml", "s3://errs/texts", str(tmp_path / "o2"), registry),
        "is not writable": compress_spec(tmp_path / "c.yaml", str(photos), str(ROOT / "README.md" / "x"), registry),
        "model 'ghost' is not in the registry": compress_spec(tmp_path / "d.yaml", "s3://errs/texts", str(tmp_path / "o3"),
                                                              registry, model="ghost"),
    }
    for expected, spec in cases.items():
        result = invoke("compress", str(spec))
        assert result.exit_code == 2, (expected, result.output)
        assert expected in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_bad_credentials_are_named_without_the_secret(tmp_path, monkeypatch):
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # this one checks credentials
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
        spec_t = tmp_path / "t.yaml"
        spec_t.write_text("kind: train\nname: t\ninput: s3://locked/photos\nregistry: " + str(tmp_path / "reg") + "\nmodel: m\n")
        result = invoke("train", str(spec_t))
        assert result.exit_code == 2, result.output
        assert "credentials were refused" in result.output
        assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in result.output
    finally:
        server.stop()


# -- exactly once, resume ----------------------------------------------------------------

def test_resume_after_the_driver_is_sigkilled(trained, big_photos, ray_local, tmp_path):
    import ray

    collection = tmp_path / "photos"
    shutil.copytree(big_photos, collection)
    output = tmp_path / "latents"
    spec = compress_spec(tmp_path / "c.yaml", str(collection), str(output), str(trained["registry"]),
                         commit_every=1, commit_seconds=0.5)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    driver = subprocess.Popen([sys.executable, "-m", "jobs.cli", "compress", str(spec)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = output / "_aec" / "manifest.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["files"]:
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the driver finished before it could be killed; give it more work"
    # a second job on the same output meanwhile stops before touching anything (its first step)
    from cluster.lease import WriterLease
    from cluster.storage import Location, StorageError

    with pytest.raises(StorageError, match="being written by another compress job"):
        WriterLease(Location.of(str(output)), "second-job", "_aec").acquire()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    on_disk = pds.dataset(str(output), format="parquet").to_table(columns=["uri"]).num_rows
    assert 0 < on_disk < 80, on_disk

    out = run_cli("compress", str(spec))  # the killed driver's lease is taken over (its process is gone)
    final = json.loads(manifest.read_text())
    run = final["runs"][-1]
    assert run["status"] == "completed"
    assert run["skipped"] == on_disk and run["rows"] == 80 - on_disk, (run, on_disk)
    assert final["runs"][0]["status"] == "running"  # the killed run never finished: its record says so
    expected = {str(p) for p in collection.iterdir()}
    assert_exactly_once(output, expected)
    assert not (tmp_path / ".latents.staging").exists()

    # New files in the input: only they are encoded.
    for i, p in enumerate(sorted(big_photos.iterdir())[:5]):
        shutil.copy(p, collection / f"new-{i}{p.suffix}")
    out = run_cli("compress", str(spec))
    run = json.loads(manifest.read_text())["runs"][-1]
    assert (run["skipped"], run["rows"]) == (80, 5), out
    assert_exactly_once(output, {str(p) for p in collection.iterdir()})


def test_an_encoder_actor_killed_mid_job_loses_and_duplicates_nothing(trained, big_photos, ray_local, tmp_path):

    output = tmp_path / "latents"
    spec = compress_spec(tmp_path / "c.yaml", str(big_photos), str(output), str(trained["registry"]),
                         commit_every=1, commit_seconds=0.5)
    killed: list[int] = []
    seen: set[str] = set()

    def encoder_pids() -> list[int]:
        """Ray titles each actor's process ``ray::<class>``: read them from /proc (the state API
        is too slow to catch a short job)."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if title.startswith("ray::"):
                    seen.add(title)
                if title.startswith("ray::MapWorker(MapBatches(EncodeBatch))"):
                    pids.append(int(entry))
        return pids

    def kill_encoder() -> None:
        manifest = output / "_aec" / "manifest.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            pids = encoder_pids()
            if pids and manifest.exists() and json.loads(manifest.read_text())["files"]:
                for pid in pids:  # at the first commit: the job is in the middle
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    except ProcessLookupError:
                        pass
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_encoder)
    killer.start()
    run_cli("compress", str(spec))
    killer.join()
    assert killed, f"no encoder actor was found to kill among {seen}"
    assert_exactly_once(output, {str(p) for p in big_photos.iterdir()})


def test_bad_inputs_become_error_rows_and_good_ones_are_all_encoded(trained, photos, ray_local, tmp_path):
    collection = tmp_path / "photos"
    shutil.copytree(photos, collection)
    good = sorted(collection.iterdir())
    data = good[0].read_bytes()
    (collection / "truncated.png").write_bytes(data[: len(data) // 2])
    (collection / "zero.png").write_bytes(b"")
    (collection / "wrong-format.jpg").write_text("this is text, not a JPEG")
    big = max(good, key=lambda p: p.stat().st_size)
    shutil.copy(big, collection / "oversized.png")
    limit = big.stat().st_size - 1  # the copy of the largest photo, and the original, exceed it
    spec = compress_spec(tmp_path / "c.yaml", str(collection), str(tmp_path / "out"), str(trained["registry"]),
                         max_file_bytes=limit)
    result = invoke("compress", str(spec))
    assert result.exit_code == 0, result.output
    errors = {Path(e["uri"]).name: e for e in map(json.loads, (tmp_path / "out/_aec/errors.jsonl").read_text().splitlines())}
    assert set(errors) == {"truncated.png", "zero.png", "wrong-format.jpg", "oversized.png", big.name}
    assert errors["zero.png"]["reason"].startswith("empty file")
    assert errors["oversized.png"]["stage"] == "read" and "max_file_bytes" in errors["oversized.png"]["reason"]
    assert errors["truncated.png"]["stage"] == "decode"
    assert "completed with 5 errors" in result.output
    expected = {str(p) for p in good if p != big}
    assert_exactly_once(tmp_path / "out", expected)

    # With the limit raised, a re-run encodes just the two large files and clears their errors.
    result = invoke("compress", str(spec), "--set", f"max_file_bytes={10 * limit}")
    errors = [json.loads(line) for line in (tmp_path / "out/_aec/errors.jsonl").read_text().splitlines()]
    assert sorted(Path(e["uri"]).name for e in errors) == ["truncated.png", "wrong-format.jpg", "zero.png"]
    assert_exactly_once(tmp_path / "out", expected | {str(big), str(collection / "oversized.png")})


def test_max_error_rate_fails_the_job_and_keeps_committed_rows(trained, photos, ray_local, tmp_path):
    collection = tmp_path / "photos"
    shutil.copytree(photos, collection)
    for i in range(6):
        (collection / f"bad-{i}.png").write_bytes(b"junk")
    spec = compress_spec(tmp_path / "c.yaml", str(collection), str(tmp_path / "out"), str(trained["registry"]),
                         max_error_rate=0.1)
    result = invoke("compress", str(spec))
    assert result.exit_code == 1
    assert "6 of 42 inputs could not be encoded (max_error_rate=0.1)" in result.output
    assert len(dataset_rows(tmp_path / "out")) == 36


# -- failures of the infrastructure -----------------------------------------------------

def test_storage_endpoint_vanishing_briefly_is_retried(trained, big_photos, s3, ray_local, tmp_path):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("flaky")
    fs.put(f"{big_photos}/", "flaky/photos/", recursive=True)
    spec = compress_spec(tmp_path / "c.yaml", "s3://flaky/photos", "s3://flaky/latents", str(trained["registry"]),
                         commit_every=1, commit_seconds=0.5)
    blipped = threading.Event()

    def blip() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if fs.exists("flaky/latents/_aec/manifest.json"):
                s3.down()
                time.sleep(4)
                s3.up()
                blipped.set()
                return
            time.sleep(0.1)
            fs.invalidate_cache()

    t = threading.Thread(target=blip)
    t.start()
    out = run_cli("compress", str(spec))
    t.join()
    assert blipped.is_set(), out
    fs.invalidate_cache()
    manifest = json.loads(fs.cat_file("flaky/latents/_aec/manifest.json"))
    assert manifest["rows"] == 80 and manifest["runs"][-1]["status"] == "completed"
    parts = sorted(p.rsplit("/", 1)[1] for p in fs.find("flaky/latents") if p.endswith(".parquet"))
    assert parts == sorted(f["name"] for f in manifest["files"])


def test_storage_endpoint_gone_fails_cleanly_with_nothing_half_published(trained, big_photos, s3, ray_local,
                                                                          tmp_path, monkeypatch):
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.mkdir("gone")
    fs.put(f"{big_photos}/", "gone/photos/", recursive=True)
    local = compress_spec(tmp_path / "c.yaml", "s3://gone/photos", "s3://gone/latents", str(trained["registry"]),
                          commit_every=1, commit_seconds=0.5)
    monkeypatch.setenv("AEC_STORAGE_RETRY_SECONDS", "3")
    s3.down()
    try:
        result = invoke("compress", str(local))
    finally:
        s3.up()
    assert result.exit_code == 2, result.output
    assert "unreachable for 3 s" in result.output and "Traceback" not in result.output
    fs.invalidate_cache()
    assert not fs.exists("gone/latents/_aec/manifest.json")
    assert not [p for p in fs.find("gone/latents") if p.endswith(".parquet")]


def test_a_training_worker_killed_mid_run_resumes_from_its_checkpoint(photos, ray_local, tmp_path):
    from ray.util.state import list_actors

    spec = tmp_path / "train.yaml"
    spec.write_text(f"kind: train\nname: t\ninput: {photos}\nregistry: {tmp_path}/registry\nmodel: resilient\n"
                    "architecture: image-conv\nepochs: 12\nbatch_size: 16\nworkers: 2\n")
    killed: list[int] = []

    def kill_worker() -> None:
        deadline = time.monotonic() + 180
        runs = tmp_path / "registry" / "_runs"
        pid, seen = None, set()
        while time.monotonic() < deadline:
            if pid is None:  # find a worker first (the state API is slow)
                for actor in list_actors(filters=[("state", "=", "ALIVE")], detail=True):
                    if "RayTrainWorker" in (actor.class_name or "") and actor.pid:
                        pid = actor.pid
            present = {p.name for p in runs.glob("*/checkpoint_*")} if runs.exists() else set()
            seen |= present
            # The controller registers reported checkpoints asynchronously; once it has pruned one
            # (num_to_keep=2), it has registered a later one, which a restart must resume from.
            if pid and seen - present:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_worker)
    killer.start()
    out = run_cli("train", str(spec))
    killer.join()
    assert killed, out
    registry = ModelRegistry(str(tmp_path / "registry"))
    assert registry.versions("resilient") == [1]
    assert registry.resolve("resilient").info["metrics"]["resumed_from_epoch"] >= 1
