"""Shared fixtures: one Ray instance per test session, a real photo collection, a trained model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.sockets import run_watching

#: a test that uses one of these starts Ray, the S3 server or a training run: not in `make unit`
_SERVER_FIXTURES = {"ray_local", "s3_endpoint", "s3", "trained"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.servers)


@pytest.fixture(scope="session")
def ray_local(s3_endpoint):
    """One local Ray instance for the whole session (start-up costs ~8 s). It starts after the
    AWS_* variables name the tests' S3 endpoint, so its workers inherit them, as a cluster's would
    through its runtime environment; the S3 server itself starts only for tests that use it."""
    import ray

    from cluster.runtime import ensure_ray

    ensure_ray(num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def photos(tmp_path_factory) -> Path:
    """36 real photo crops (PNG and JPEG, RGB and grayscale, 24-48 px) from scikit-image's samples."""
    from jobs.sample_data import make_photo_collection

    out = tmp_path_factory.mktemp("photos")
    make_photo_collection(out, 36, sizes=(24, 32, 40, 48), seed=1, jpeg_every=4)
    return out


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def s3_endpoint(monkeypatch_session) -> int:
    """Where the S3 server of :func:`s3` will listen, set in the standard AWS_* variables before
    anything starts (so Ray's workers inherit them), without starting the server: tests that
    never touch S3 never start moto."""
    from cluster.head import free_port
    from tests.s3 import CREDENTIALS

    port = free_port()
    for k, v in {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}.items():
        monkeypatch_session.setenv(k, v)
    return port


@pytest.fixture(scope="session")
def s3(s3_endpoint):
    """A moto S3 server on loopback, reached through a proxy that can vanish at the address the
    AWS_* variables name, so every client (s3fs, pyarrow, Ray workers) reaches it."""
    from tests.s3 import MotoServer, VanishingProxy

    server = MotoServer()
    proxy = VanishingProxy(server.port, port=s3_endpoint)
    yield proxy
    proxy.down()
    server.stop()


@pytest.fixture(scope="session")
def monkeypatch_session():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def run_cli(*args: str) -> str:
    """Run an ``aec`` command in-process (sharing the session's Ray); assert it succeeded."""
    from typer.testing import CliRunner

    from jobs.cli import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="session")
def trained(ray_local, photos, tmp_path_factory) -> dict:
    """A model fine-tuned once per session on the photo collection from the image zoo model (the
    default starting point): registry ``photos@1``; ``listened``: the sockets opened meanwhile."""
    root = tmp_path_factory.mktemp("trained")
    spec = root / "train.yaml"
    spec.write_text(
        f"kind: train\nname: t\nmodality: image\ninput: {photos}\nregistry: {root}/registry\nmodel: photos\n"
        "steps: 12\nbatch_size: 8\npatch_size: 48\nworkers: 2\ngpus: 0\npatches_per_item: 2\n"
    )
    # every socket opened while it trains is recorded: tests/cluster/test_train_sockets.py checks them
    output, listened = run_watching(lambda: run_cli("train", str(spec)))
    return {"registry": root / "registry", "output": output, "listened": listened}
