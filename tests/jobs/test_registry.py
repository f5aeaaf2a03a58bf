"""The model registry: versions claimed atomically, bundles never replaced, sha256 checked."""

from __future__ import annotations

import hashlib
import multiprocessing as mp

import pytest

from jobs.registry import ModelRegistry, RegistryError


def _register_many(url: str, worker: int, count: int, env: dict[str, str]) -> list[int]:
    import os

    os.environ.update(env)
    registry = ModelRegistry(url)
    return [registry.register("photos", f"bundle {worker}-{i}".encode() * 100, {"by": worker}).version
            for i in range(count)]


def _race(url: str, env: dict[str, str] | None = None, workers: int = 3, count: int = 20) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        results = pool.starmap(_register_many, [(url, w, count, env or {}) for w in range(workers)])
    versions = [v for r in results for v in r]
    assert len(set(versions)) == workers * count  # nobody got a version twice
    registry = ModelRegistry(url)
    assert registry.versions("photos") == sorted(versions)
    for v in versions:  # every bundle is the one its registrant wrote, and says so
        mv, bundle = registry.load(f"photos@{v}")
        assert hashlib.sha256(bundle).hexdigest() == mv.info["bundle_sha256"]
        assert bundle.startswith(f"bundle {mv.info['by']}-".encode())


def test_concurrent_registrations_get_distinct_versions_locally(tmp_path):
    _race(str(tmp_path / "registry"))


def test_concurrent_registrations_get_distinct_versions_on_s3(s3):
    import os

    import s3fs

    s3fs.S3FileSystem(endpoint_url=os.environ["AWS_ENDPOINT_URL"]).mkdir("registry-race")
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    _race("s3://registry-race/reg", env, workers=2, count=10)


def test_a_replaced_bundle_is_detected(tmp_path):
    registry = ModelRegistry(str(tmp_path / "registry"))
    mv = registry.register("photos", b"the real weights", {})
    (tmp_path / "registry" / "photos" / "v1" / "model.aec").write_bytes(b"other weights")
    with pytest.raises(RegistryError, match="not the one registered"):
        registry.load(mv.ref)


def test_a_crashed_registration_leaves_its_number_unused(tmp_path):
    registry = ModelRegistry(str(tmp_path / "registry"))
    registry.register("photos", b"v1", {})
    (tmp_path / "registry" / "photos" / "v2").mkdir()
    (tmp_path / "registry" / "photos" / "v2" / "model.aec").write_bytes(b"half-registered")  # no version.json
    assert registry.register("photos", b"v3", {}).version == 3
    assert registry.versions("photos") == [1, 3]


def _promote_many(root: str, name: str, versions: list[int]) -> int:
    from jobs.registry import ModelRegistry

    registry, failed = ModelRegistry(root), 0
    for v in versions:
        try:
            registry.promote(name, v)
        except Exception:  # noqa: BLE001 - counted, asserted below
            failed += 1
    return failed


def test_concurrent_promotions_never_tear_the_aliases(tmp_path):
    """Issue 27, item 4: two promoters and a reader at once: every promotion lands, every read parses."""
    from concurrent.futures import ProcessPoolExecutor

    root = str(tmp_path / "reg")
    registry = ModelRegistry(root)
    for i in range(3):
        registry.register("m", f"bundle {i}".encode(), {})
    registry.promote("m", 1)
    with ProcessPoolExecutor(2) as pool:
        jobs = [pool.submit(_promote_many, root, "m", [1 + (k + j) % 3 for k in range(60)]) for j in range(2)]
        reads = 0
        while not all(j.done() for j in jobs):
            assert registry.aliases("m")["production"] in (1, 2, 3)
            reads += 1
        assert [j.result() for j in jobs] == [0, 0]
    assert registry.aliases("m")["production"] in (1, 2, 3) and reads > 0


def test_a_full_disk_during_register_leaves_no_committed_version(tmp_path, monkeypatch):
    import errno
    import os

    from cluster.storage import StorageError

    registry = ModelRegistry(str(tmp_path / "reg"))
    real_replace = os.replace

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="no space left"):
        registry.register("m", b"bundle", {})
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    assert registry.versions("m") == [] and real_replace is os.replace
    assert registry.register("m", b"bundle", {}).version == 2  # the claimed number 1 is skipped, never committed
