"""A pool that would hold every CPU the tasks feeding it need never starts a batch: on the
embedded instance the job stops at once, in one line naming the fix."""

from __future__ import annotations

import pytest

from cluster.runtime import STORAGE_TASK_CPUS, PoolTooLarge, pool_room


def test_the_room_left_is_where_the_actors_leave_most():
    assert pool_room(2, 0.5, [1.0, 1.0, 1.0]) == 1.0  # one per node: a whole node free
    assert pool_room(2, 0.75, [1.0, 1.0]) == 0.25  # each node keeps a quarter
    assert pool_room(2, 0.75, [1.0]) == 0.25  # an actor pool starts with the one that fits
    assert pool_room(2, 0.75, [1.0], gang=True) == -1.0  # Ray Train's workers start all or none
    assert pool_room(1, 1.0, [1.0]) == 0.0  # one 1-CPU encoder on a 1-CPU node: nothing left
    assert pool_room(1, 2.0, [1.0, 1.0]) == -1.0 and pool_room(2, 0.5, []) == -1.0


def test_a_training_pool_holding_every_cpu_is_refused_in_one_line(ray_local, photos, tmp_path):
    from jobs.run import run_train
    from jobs.spec import parse_spec

    # the embedded instance has 2 CPUs: two training workers of one CPU leave none for the patches
    job = parse_spec({"kind": "train", "name": "greedy", "modality": "image", "input": str(photos),
                      "registry": str(tmp_path / "registry"), "model": "greedy", "steps": 2,
                      "workers": 2, "cpus_per_worker": 1.0})
    with pytest.raises(PoolTooLarge) as err:
        run_train(job, announce=lambda _: None)
    message = str(err.value)
    assert "\n" not in message and "2 worker(s) of 1 CPU leave no node 0.5 CPU" in message
    assert message.endswith("lower workers or cpus_per_worker")
    assert not (tmp_path / "registry" / "greedy").exists()  # nothing registered


def test_a_compress_encoder_holding_every_cpu_is_refused_before_any_write(ray_local, photos, tmp_path):
    from jobs.run import run_compress
    from jobs.spec import parse_spec

    job = parse_spec({"kind": "compress", "name": "whole", "modality": "image", "input": str(photos),
                      "output": str(tmp_path / "out"), "registry": str(tmp_path / "registry"),
                      "model": "zoo:image-small", "workers": 1, "cpus_per_worker": 2.0})
    with pytest.raises(PoolTooLarge) as err:
        run_compress(job, announce=lambda _: None)
    assert f"1 worker(s) of 2 CPU leave no node {STORAGE_TASK_CPUS:g} CPU" in str(err.value)
    assert not list((tmp_path / "out").rglob("*.parquet"))  # nothing written
