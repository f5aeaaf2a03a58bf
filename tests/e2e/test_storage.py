"""Object storage, exactly-once output, resume and bad input — against a moto S3 server on
loopback and real SIGKILLs of real processes (a driver, an encoder actor, a training worker)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from jobs.registry import ModelRegistry
from tests import tables
from tests.conftest import run_cli
from tests.s3 import CREDENTIALS, MotoServer

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def compress_spec(path: Path, input: str, output: str, registry: str, **extra) -> Path:
    # effort fast: these tests are about storage and failures, WebP alone competes with the model
    body = {"kind": "compress", "name": "c", "modality": "image", "input": input, "output": output,
            "registry": registry, "model": "photos", "batch_size": 4, "workers": 1, "effort": "fast", **extra}
    path.write_text("".join(f"{k}: {v}\n" for k, v in body.items()))
    return path


def dataset_rows(output) -> list[dict]:
    return tables.dataset(output).dataset.to_table(columns=["id", "uri", "sha256", "model_version"]).to_pylist()


def assert_exactly_once(output, expected_uris: set[str]) -> None:
    """What every Delta reader sees: each input once (parts no commit lists are invisible)."""
    rows = dataset_rows(output)
    assert len(rows) == len(expected_uris), (len(rows), len(expected_uris))
    assert {r["uri"] for r in rows} == expected_uris
    assert len({r["id"] for r in rows}) == len(rows)
    assert len({(r["id"], r["sha256"], r["model_version"]) for r in rows}) == len(rows)


def committed_rows(output) -> int:
    """Rows committed so far (0 while there is no table yet), as a reader polling the table sees them."""
    import pyarrow as pa

    from cluster.storage import Location
    from cluster.table import load_table

    try:
        table = load_table(Location.of(str(output)))
    except Exception:  # noqa: BLE001 - caught mid-creation
        return 0
    return 0 if table is None else sum(pa.table(table.get_add_actions(flatten=True)).column("num_records").to_pylist())


BIG = 48  # photos in big_photos


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory) -> Path:
    """Larger crops, so a job runs long enough to be killed in the middle."""
    from jobs.sample_data import make_photo_collection

    out = tmp_path_factory.mktemp("big")
    make_photo_collection(out, BIG, sizes=(256, 384, 512), seed=3)
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

    # Readers without Ray, straight from the bucket, through the Delta log: deltalake with pyarrow's
    # native S3, and Polars.
    import polars as pl
    from deltalake import DeltaTable
    from pyarrow.fs import S3FileSystem, SubTreeFileSystem

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    delta = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1", **CREDENTIALS}
    native = S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http")
    table = DeltaTable("s3://archive/latents", storage_options=delta).to_pyarrow_dataset(
        filesystem=SubTreeFileSystem("archive/latents", native)).to_table()
    assert table.num_rows == 36
    df = pl.scan_delta("s3://archive/latents", storage_options=delta).collect()
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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and driver.poll() is None:
        if committed_rows(output):
            break
        time.sleep(0.05)
    assert driver.poll() is None, "the driver finished before it could be killed; give it more work"
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    committed = committed_rows(output)
    assert 0 < committed < BIG, committed
    written = len(list(output.glob("part-*.parquet")))

    out = run_cli("compress", str(spec))
    runs = tables.dataset(output).runs()
    assert runs[-1]["status"] == "completed"
    assert runs[-1]["skipped"] == committed and runs[-1]["rows"] == BIG - committed, (runs[-1], committed)
    assert runs[0]["status"] == "running or stopped"  # the killed run never finished: its history says so
    expected = {str(p) for p in collection.iterdir()}
    assert_exactly_once(output, expected)
    import polars as pl  # an independent reader of the Delta log agrees

    assert pl.scan_delta(str(output)).select(pl.col("uri").n_unique(), pl.len()).collect().row(0) == (BIG, BIG)
    print(f"killed driver: {committed} rows committed, {written} parts written; the re-run encoded {BIG - committed}")

    # New files in the input: only they are encoded.
    for i, p in enumerate(sorted(big_photos.iterdir())[:5]):
        shutil.copy(p, collection / f"new-{i}{p.suffix}")
    out = run_cli("compress", str(spec))
    run = tables.last_run(output)
    assert (run["skipped"], run["rows"]) == (BIG, 5), out
    assert_exactly_once(output, {str(p) for p in collection.iterdir()})


@pytest.mark.parametrize("store", ["local", "s3"])
def test_two_jobs_compressing_into_one_table_at_once_commit_each_input_once(trained, photos, ray_local, tmp_path,
                                                                            request, store):
    """Two drivers, the same inputs, one output, started together: the table's commits are checked
    against each other, so neither adds a row the other committed, and nothing is lost."""
    import ray

    some = tmp_path / "photos"
    some.mkdir()
    for p in sorted(photos.iterdir())[:16]:
        shutil.copy(p, some / p.name)
    if store == "s3":
        request.getfixturevalue("s3")
        import s3fs

        fs = s3fs.S3FileSystem()
        fs.mkdir("both")
        fs.put(f"{some}/", "both/photos/", recursive=True)
        collection, output = "s3://both/photos", "s3://both/latents"
        expected = {f"s3://{p}" for p in fs.find("both/photos")}
    else:
        collection, output = str(some), str(tmp_path / "latents")
        expected = {str(p) for p in some.iterdir()}
    spec = compress_spec(tmp_path / "c.yaml", collection, output, str(trained["registry"]), batch_size=2,
                         commit_every=1, commit_seconds=0.2)
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    drivers = [subprocess.Popen([sys.executable, "-m", "jobs.cli", "compress", str(spec)], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [d.communicate(timeout=300)[0] for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0], outputs
    assert_exactly_once(output, expected)
    runs = tables.dataset(output).runs()
    assert sum(r["rows"] for r in runs) == len(expected), runs  # between them, each input committed once
    print(f"{store}: rows committed per job {[r['rows'] for r in runs]}")


def _ray_processes() -> dict[int, str]:
    """pid -> title of this session's Ray processes, read from /proc: Ray titles each actor's
    process ``ray::<class>...``, and each is a descendant of this process (its raylet is our child).
    The state API takes seconds a call on a loaded machine: too slow to catch a short job."""

    def parent(pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return 0

    def ours(pid: int) -> bool:
        while pid > 1:
            pid = parent(pid)
            if pid == os.getpid():
                return True
        return False

    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if title.startswith("ray::") and ours(int(entry)):
                found[int(entry)] = title
    return found


def test_an_encoder_actor_killed_mid_job_loses_and_duplicates_nothing(trained, big_photos, ray_local, tmp_path):

    output = tmp_path / "latents"
    spec = compress_spec(tmp_path / "c.yaml", str(big_photos), str(output), str(trained["registry"]),
                         commit_every=1, commit_seconds=0.5)
    killed: list[int] = []
    seen: set[str] = set()

    def encoder_pids() -> list[int]:
        procs = _ray_processes()
        seen.update(procs.values())
        return [pid for pid, title in procs.items() if title.startswith("ray::MapWorker(MapBatches(EncodeBatch))")]

    def kill_encoder() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            pids = encoder_pids()
            if pids and committed_rows(output):
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
    errors = {Path(e["uri"]).name: e for e in tables.errors(tmp_path / "out")}
    assert set(errors) == {"truncated.png", "zero.png", "wrong-format.jpg", "oversized.png", big.name}
    assert errors["zero.png"]["reason"].startswith("empty file")
    assert errors["oversized.png"]["stage"] == "read" and "max_file_bytes" in errors["oversized.png"]["reason"]
    assert errors["truncated.png"]["stage"] == "decode"
    assert "completed with 5 errors" in result.output
    expected = {str(p) for p in good if p != big}
    assert_exactly_once(tmp_path / "out", expected)

    # With the limit raised, a re-run encodes just the two large files and clears their errors.
    result = invoke("compress", str(spec), "--set", f"max_file_bytes={10 * limit}")
    errors = tables.errors(tmp_path / "out")
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
            if fs.exists("flaky/latents/_delta_log") and committed_rows("s3://flaky/latents"):
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
    assert tables.last_run("s3://flaky/latents")["status"] == "completed"
    assert_exactly_once("s3://flaky/latents", {f"s3://{p}" for p in fs.find("flaky/photos")})


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
    assert not fs.exists("gone/latents/_delta_log")
    assert not [p for p in fs.find("gone/latents") if p.endswith(".parquet")]


def test_a_training_worker_killed_mid_run_resumes_from_its_checkpoint(photos, ray_local, tmp_path):
    spec = tmp_path / "train.yaml"
    spec.write_text(f"kind: train\nname: t\ninput: {photos}\nregistry: {tmp_path}/registry\nmodel: resilient\n"
                    "architecture: image-conv\nepochs: 6\nbatch_size: 16\nworkers: 2\n")
    killed: list[int] = []

    def kill_worker() -> None:
        deadline = time.monotonic() + 180
        runs = tmp_path / "registry" / "_runs"
        pid = None
        while time.monotonic() < deadline:
            if pid is None:  # find a worker first
                pid = next((p for p, title in _ray_processes().items() if title.startswith("ray::RayTrainWorker")),
                           None)
            # The controller registers reported checkpoints asynchronously: once its snapshot names
            # one, a restart must resume from it (a checkpoint still being written does not count).
            if pid and any("checkpoint_" in p.read_text() for p in runs.glob("*/checkpoint_manager_snapshot.json")):
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
