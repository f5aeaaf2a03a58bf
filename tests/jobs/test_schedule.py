"""The scheduler's decisions, one ``tick(now)`` at a time, with no Ray and no cluster: what fires,
what is skipped while a run is active, what a long outage coalesces, what a failed submission
records."""

from __future__ import annotations

import pytest

from jobs.schedule import ScheduleError, Scheduler, ScheduleStore
from jobs.spec import parse_spec

T0 = 1_800_000_000.0  # a fixed "now" (2027-01-15T08:00:00Z), on a minute boundary


class FakeCluster:
    """Job ids handed out on submit; each job's status is set by the test."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.submitted: list[tuple[str, str | None]] = []
        self.down = False

    def submit(self, spec, address, schedule) -> str:  # noqa: ANN001
        if self.down:
            raise ConnectionError("cluster at 127.0.0.1:1 unreachable\nsecond line")
        job_id = f"job-{len(self.submitted)}"
        self.submitted.append((job_id, address))
        self.status[job_id] = "RUNNING"
        return job_id

    def job_status(self, job_id, address) -> str:  # noqa: ANN001
        return self.status[job_id]


@pytest.fixture
def setup(tmp_path):
    store = ScheduleStore(tmp_path / "schedules.db")
    spec = parse_spec({"kind": "compress", "name": "c", "input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
                       "registry": str(tmp_path / "reg"), "model": "m"})
    store.add("every-minute", "* * * * *", spec, "127.0.0.1:8265", now=T0)
    cluster = FakeCluster()
    return store, cluster, Scheduler(store, cluster.submit, cluster.job_status)


def _statuses(store: ScheduleStore) -> list[str]:
    return [r["status"] for r in reversed(store.runs("every-minute", limit=100))]


def test_nothing_fires_before_the_first_due_time_then_one_run_is_submitted(setup):
    store, cluster, scheduler = setup
    assert scheduler.tick(T0 + 30) == []
    [event] = scheduler.tick(T0 + 61)
    assert event.status == "SUBMITTED" and cluster.submitted == [("job-0", "127.0.0.1:8265")]
    assert scheduler.tick(T0 + 62) == []  # not due again until the next minute


def test_a_due_time_while_the_previous_run_is_active_is_skipped_and_settled_runs_free_the_next(setup):
    store, cluster, scheduler = setup
    scheduler.tick(T0 + 60)
    [skipped] = scheduler.tick(T0 + 120)
    assert skipped.status == "SKIPPED_OVERLAP" and skipped.job_id == "job-0"
    cluster.status["job-0"] = "SUCCEEDED"
    events = scheduler.tick(T0 + 180)
    assert [e.status for e in events] == ["SUCCEEDED", "SUBMITTED"]
    assert _statuses(store) == ["SUCCEEDED", "SKIPPED_OVERLAP", "SUBMITTED"]
    assert len(cluster.submitted) == 2


def test_due_times_missed_while_down_are_coalesced_into_one_run(setup):
    store, cluster, scheduler = setup
    events = scheduler.tick(T0 + 10 * 60 + 5)  # ten due times passed
    assert [e.status for e in events] == ["MISSED", "SUBMITTED"]
    assert _statuses(store).count("MISSED") == 9 and len(cluster.submitted) == 1


def test_a_failed_submission_is_recorded_in_one_line_and_the_next_due_time_tries_again(setup):
    store, cluster, scheduler = setup
    cluster.down = True
    [event] = scheduler.tick(T0 + 60)
    assert event.status == "SUBMIT_FAILED" and event.message == "cluster at 127.0.0.1:1 unreachable"
    cluster.down = False
    [event] = scheduler.tick(T0 + 120)
    assert event.status == "SUBMITTED"


def test_bad_cron_and_duplicate_names_are_user_errors(setup, tmp_path):
    store, _, _ = setup
    spec = store.spec(store.get("every-minute"))
    with pytest.raises(ScheduleError, match="not a valid cron expression"):
        store.add("x", "every night", spec, None)
    with pytest.raises(ScheduleError, match="remove it first"):
        store.add("every-minute", "0 2 * * *", spec, None)


def test_a_scheduled_train_continues_from_production_unless_its_spec_names_a_start(tmp_path):
    store = ScheduleStore(tmp_path / "s.db")
    base = {"kind": "train", "name": "t", "input": str(tmp_path), "registry": str(tmp_path / "r"), "model": "m"}
    store.add("plain", "0 2 * * *", parse_spec(base), None)
    store.add("scratch", "0 2 * * *", parse_spec({**base, "init": "none"}), None)
    assert store.spec(store.get("plain")).init == "continue"
    assert store.spec(store.get("scratch")).init == "none"


def test_one_schedule_with_a_bad_catalog_record_does_not_stop_the_others(setup, tmp_path):
    """Issue 27, item 16: a run whose catalog record is not JSON is logged each tick; the healthy
    schedule still fires."""
    from pathlib import Path

    from jobs.catalog import JobCatalog

    store, cluster, scheduler = setup
    healthy = parse_spec({"kind": "compress", "name": "h", "input": str(tmp_path / "in2"),
                          "output": str(tmp_path / "out2"), "registry": str(tmp_path / "reg2"), "model": "m"})
    store.add("healthy", "*/2 * * * *", healthy, "127.0.0.1:8265", now=T0)
    scheduler.tick(T0 + 60)  # every-minute submits job-0
    cluster.status["job-0"] = "SUCCEEDED"
    record = Path(JobCatalog(str(tmp_path / "reg"))._path("jobs", "job-0"))
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text("{not json")
    events = scheduler.tick(T0 + 125)
    assert "SETTLE_FAILED" in [e.status for e in events]
    assert any(e.schedule == "healthy" and e.status == "SUBMITTED" for e in events)
