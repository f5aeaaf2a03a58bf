"""An actor pool that would hold every CPU its read and write tasks need never starts a batch:
on the embedded instance the job stops at once, in one line naming the fix."""

from __future__ import annotations

import pytest

from cluster.runtime import IO_TASK_CPUS, PoolTooLarge, pool_room


def test_the_room_left_is_where_the_actors_leave_most():
    assert pool_room(2, 0.5, [1.0, 1.0, 1.0]) == 1.0  # one per node: a whole node free
    assert pool_room(2, 0.75, [1.0, 1.0]) == 0.25  # each node keeps a quarter
    assert pool_room(1, 1.0, [1.0]) == 0.0  # one 1-CPU encoder on a 1-CPU node: the bench that never started
    assert pool_room(3, 1.0, [1.0, 1.0]) == -1.0  # one does not fit at all
    assert pool_room(2, 0.5, []) == -1.0


def test_a_compress_pool_holding_every_cpu_is_refused_in_one_line(ray_local, photos, tmp_path):
    from jobs.run import run_compress
    from jobs.spec import parse_spec

    # the embedded instance has 2 CPUs: two encoders of one CPU leave none for reading
    job = parse_spec({"kind": "compress", "name": "greedy", "modality": "image", "input": str(photos),
                      "output": str(tmp_path / "out"), "registry": str(tmp_path / "registry"),
                      "model": "zoo:image-small", "workers": 2, "cpus_per_worker": 1.0})
    with pytest.raises(PoolTooLarge) as err:
        run_compress(job, announce=lambda _: None)
    message = str(err.value)
    assert "\n" not in message and "2 actor(s) of 1 CPU" in message and "lower workers or cpus_per_worker" in message
    assert f"{IO_TASK_CPUS:g} CPU" in message
    assert not list((tmp_path / "out").rglob("part-*.parquet"))  # nothing staged
