"""Schedules: cron-timed submissions of a spec to a Ray cluster, kept in SQLite.

    schedules(name, cron, spec, address, created_at, last_fire)
    runs(id, schedule, scheduled_for, status, job_id, submitted_at, finished_at, message)

Policies (``aec schedule --help`` says the same):
- never two runs of one schedule at once: a due time that finds the previous run still
  PENDING/RUNNING is recorded as ``SKIPPED_OVERLAP`` and not submitted;
- runs missed while the scheduler was down are coalesced: at start-up the latest missed due
  time runs once, the earlier ones are recorded as ``MISSED``;
- state (schedules, last fire times, run history) lives in one SQLite file, so a restarted
  scheduler goes on where it stopped; a lock file keeps a second scheduler off the same state.

Cron expressions have 5 fields (minute hour day month weekday), or 6 with seconds last
(croniter's form): ``"* * * * * */10"`` fires every 10 seconds.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from aecore.errors import UserError
from jobs.catalog import TERMINAL, JobCatalog
from jobs.spec import INIT_CONTINUE, JobSpec, TrainJobSpec, parse_spec

log = logging.getLogger(__name__)

__all__ = ["Event", "ScheduleError", "ScheduleStore", "Scheduler", "SchedulerBusy"]

ACTIVE = frozenset({"SUBMITTED", "PENDING", "RUNNING"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY, cron TEXT NOT NULL, spec TEXT NOT NULL, address TEXT,
    created_at REAL NOT NULL, last_fire REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, schedule TEXT NOT NULL, scheduled_for REAL NOT NULL,
    status TEXT NOT NULL, job_id TEXT, submitted_at REAL, finished_at REAL, message TEXT);
CREATE INDEX IF NOT EXISTS runs_by_schedule ON runs (schedule, id);
"""


class ScheduleError(UserError):
    """A schedule that cannot be added, found or run (one line, with the fix)."""


class SchedulerBusy(ScheduleError):
    """Another scheduler holds this state directory."""


@dataclass(frozen=True)
class Event:
    schedule: str
    status: str
    message: str
    job_id: str | None = None


class ScheduleStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        # Private to the user: it holds job specs and the cluster addresses they run on.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.db.row_factory = sqlite3.Row
        self.db.executescript(_SCHEMA)

    def add(self, name: str, cron: str, spec: JobSpec, address: str | None, now: float | None = None) -> None:
        if not croniter.is_valid(cron):
            raise ScheduleError(f"cron {cron!r} is not a valid cron expression; use 5 fields (\"0 2 * * *\": 02:00 daily) "
                            "or 6 with seconds last (\"* * * * * */10\")")
        if self.get(name) is not None:
            raise ScheduleError(f"schedule {name!r} exists; remove it first with `aec schedule remove {name}`")
        now = time.time() if now is None else now
        if isinstance(spec, TrainJobSpec) and spec.init is None:
            # A scheduled retraining continues from the model's production version (the zoo model
            # the first time), unless its spec names another starting point.
            spec = spec.model_copy(update={"init": INIT_CONTINUE})
        self.db.execute("INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?)",
                        (name, cron, yaml.safe_dump(spec.model_dump(), sort_keys=False), address, now, now))

    def remove(self, name: str) -> bool:
        return self.db.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0

    def get(self, name: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM schedules WHERE name = ?", (name,)).fetchone()

    def schedules(self) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM schedules ORDER BY name").fetchall()

    def runs(self, name: str | None = None, limit: int = 20) -> list[sqlite3.Row]:
        if name is None:
            return self.db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return self.db.execute("SELECT * FROM runs WHERE schedule = ? ORDER BY id DESC LIMIT ?", (name, limit)).fetchall()

    def active(self, name: str) -> list[sqlite3.Row]:
        """Runs of a schedule that may still be running on the cluster, oldest first."""
        marks = ", ".join("?" * len(ACTIVE))
        return self.db.execute(f"SELECT * FROM runs WHERE schedule = ? AND status IN ({marks}) ORDER BY id",
                               (name, *sorted(ACTIVE))).fetchall()

    def spec(self, row: sqlite3.Row) -> JobSpec:
        return parse_spec(yaml.safe_load(row["spec"]), source=f"schedule {row['name']}")

    def next_fire(self, row: sqlite3.Row) -> float:
        return croniter(row["cron"], row["last_fire"]).get_next(float)

    def record(self, schedule: str, scheduled_for: float, status: str, job_id: str | None = None,
               message: str | None = None) -> int:
        submitted = time.time() if job_id else None
        cur = self.db.execute("INSERT INTO runs (schedule, scheduled_for, status, job_id, submitted_at, message) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (schedule, scheduled_for, status, job_id, submitted, message))
        return int(cur.lastrowid)

    def finish(self, run_id: int, status: str, message: str | None = None) -> None:
        self.db.execute("UPDATE runs SET status = ?, finished_at = ?, message = coalesce(?, message) WHERE id = ?",
                        (status, time.time(), message, run_id))

    def fired(self, name: str, at: float) -> None:
        self.db.execute("UPDATE schedules SET last_fire = ? WHERE name = ?", (at, name))

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Only one scheduler per state file."""
        with open(self.path.with_suffix(".lock"), "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SchedulerBusy(f"another `aec scheduler run` is using {self.path}; stop it first") from None
            yield


class Scheduler:
    """One :meth:`tick` submits what is due and settles what finished; :meth:`run` loops it."""

    def __init__(self, store: ScheduleStore, submit: Callable[[JobSpec, str | None, str], str],
                 status: Callable[[str, str | None], str], metrics: Any = None) -> None:
        self.store = store
        self.submit = submit  # (spec, address, schedule name) -> job id
        self.status = status  # (job id, address) -> Ray job status
        self.metrics = metrics

    def _count(self, name: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("aec_schedule_runs", schedule=name, outcome=outcome)

    def tick(self, now: float | None = None) -> list[Event]:
        now = time.time() if now is None else now
        events: list[Event] = []
        for row in self.store.schedules():
            try:
                events += self._settle(row)
            except Exception as exc:  # noqa: BLE001 - one schedule's bad record must not stop the others
                log.warning("schedule %s: its runs could not be settled (%s: %s); the others go on",
                            row["name"], type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
                events.append(Event(row["name"], "SETTLE_FAILED", f"{type(exc).__name__}: {exc}"[:300]))
            due = []
            it = croniter(row["cron"], row["last_fire"])
            while (t := it.get_next(float)) <= now:
                due.append(t)
                if len(due) > 10_000:  # a seconds cron after a long outage: count no further
                    break
            if not due:
                continue
            for t in due[:-1]:
                self.store.record(row["name"], t, "MISSED", message="scheduler was down; coalesced into a later run")
                self._count(row["name"], "missed")
            if due[:-1]:
                events.append(Event(row["name"], "MISSED", f"{len(due) - 1} missed run(s) coalesced into one"))
            events.append(self._fire(row, due[-1]))
            self.store.fired(row["name"], due[-1])
        return events

    def _fire(self, row: Any, at: float) -> Event:
        name = row["name"]
        active = self.store.active(name)
        if active:
            msg = f"previous run {active[0]['job_id']} is still {active[0]['status']}; not started"
            self.store.record(name, at, "SKIPPED_OVERLAP", message=msg)
            self._count(name, "skipped_overlap")
            return Event(name, "SKIPPED_OVERLAP", msg, active[0]["job_id"])
        try:
            job_id = self.submit(self.store.spec(row), row["address"], name)
        except Exception as exc:  # noqa: BLE001 - a failed submission is history, not a crash
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.store.record(name, at, "SUBMIT_FAILED", message=msg[:300])
            self._count(name, "failed")
            return Event(name, "SUBMIT_FAILED", msg)
        self.store.record(name, at, "SUBMITTED", job_id=job_id)
        self._count(name, "submitted")
        return Event(name, "SUBMITTED", f"submitted {job_id}", job_id)

    def _settle(self, row: Any) -> list[Event]:
        events = []
        for run in self.store.active(row["name"]):
            try:
                status = self.status(run["job_id"], row["address"])
            except Exception:  # noqa: BLE001 - cluster unreachable: ask again next tick
                continue
            if status not in TERMINAL:
                if status != run["status"]:
                    self.store.db.execute("UPDATE runs SET status = ? WHERE id = ?", (status, run["id"]))
                continue
            message = self._outcome(row, run["job_id"], status)
            self.store.finish(run["id"], status, message)
            self._count(row["name"], status.lower())
            events.append(Event(row["name"], status, message or "", run["job_id"]))
        return events

    def _outcome(self, row: Any, job_id: str, status: str) -> str | None:
        """What the job's catalog record says (the promotion decision of a retrain)."""
        spec = self.store.spec(row)
        record = JobCatalog(spec.registry, spec.storage_options).job(job_id) or {}
        if status == "SUCCEEDED" and self.metrics is not None:
            self.metrics.set("aec_schedule_last_success_timestamp_seconds", time.time(), schedule=row["name"])
        promotion = record.get("promotion")
        if promotion and self.metrics is not None:
            self.metrics.inc("aec_promotions", model=spec.model, outcome="promoted" if promotion["promoted"] else "kept")
        if promotion:
            return promotion["reason"]
        return record.get("message")

    def run(self, poll: float = 1.0, until: Callable[[], bool] = lambda: False,
            on_event: Callable[[Event], None] = lambda e: None) -> None:
        with self.store.lock():
            while not until():
                for event in self.tick():
                    on_event(event)
                time.sleep(poll)
