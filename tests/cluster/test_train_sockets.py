"""`aec train` on the embedded default listens on loopback only (issue 27 item 8): Ray Train's
torch process group (its TCP store and gloo's pairs) binds 127.0.0.1, never ``*:port``."""

from __future__ import annotations

import os
import threading
import time

from tests.conftest import run_cli
from tests.sockets import is_loopback, listening_addresses


def _listening_everywhere() -> set[tuple[str, int]]:
    return set(listening_addresses([int(p) for p in os.listdir("/proc") if p.isdigit()]))


def test_training_listens_on_loopback_only(ray_local, photos, tmp_path):
    before = _listening_everywhere()
    spec = tmp_path / "train.yaml"
    spec.write_text(f"kind: train\nname: sockets\nmodality: image\ninput: {photos}\nregistry: {tmp_path}/registry\n"
                    "model: sockets\nsteps: 16\nbatch_size: 4\npatch_size: 32\nworkers: 2\ngpus: 0\n"
                    "patches_per_item: 1\n")
    out: list[str] = []
    job = threading.Thread(target=lambda: out.append(run_cli("train", str(spec))))
    job.start()
    seen: set[tuple[str, int]] = set()
    while job.is_alive():  # every socket anything on this machine listens on while the job trains
        seen |= _listening_everywhere()
        time.sleep(0.1)
    job.join()
    assert out, "the training job failed"
    new = seen - before
    assert new, "no process listened during training: nothing was checked"
    assert all(is_loopback(a) for a, _ in new), sorted(new)
