"""The job and dataset catalog, on local files, with no Ray: the record a job leaves whether it
succeeds, judges itself failed, fails, or is stopped."""

from __future__ import annotations

import pytest
import typer

from jobs.catalog import JobCatalog, JobRun


def _run(catalog: JobCatalog, monkeypatch, job_id: str) -> JobRun:
    monkeypatch.setenv("AEC_JOB_ID", job_id)
    return JobRun(catalog, "compress", {"name": "c", "input": "in", "output": "out", "model": "m",
                                        "storage_options": {"key": "secret"}})


def test_a_successful_job_records_its_counts_and_never_its_storage_options(tmp_path, monkeypatch):
    catalog = JobCatalog(str(tmp_path / "reg"))
    with _run(catalog, monkeypatch, "job-1") as run:
        assert catalog.job("job-1")["status"] == "RUNNING"
        run.finish(rows=36, model_version="m@1")
    record = catalog.job("job-1")
    assert record["status"] == "SUCCEEDED" and record["rows"] == 36 and record["model"] == "m"
    assert "secret" not in (tmp_path / "reg/_catalog/jobs/job-1.json").read_text()


def test_failed_judged_failed_and_stopped_jobs_each_say_why(tmp_path, monkeypatch):
    catalog = JobCatalog(str(tmp_path / "reg"))
    with pytest.raises(RuntimeError), _run(catalog, monkeypatch, "boom"):
        raise RuntimeError("disk full\nmore detail")
    with _run(catalog, monkeypatch, "judged") as run:
        run.finish(status="FAILED", message="3 of 10 inputs could not be encoded")
    with pytest.raises(KeyboardInterrupt), _run(catalog, monkeypatch, "stopped"):
        raise KeyboardInterrupt("stopped by signal 15")
    with pytest.raises(typer.Exit), _run(catalog, monkeypatch, "exit") as run:
        run.finish(message="too many errors")
        raise typer.Exit(1)
    assert (catalog.job("boom")["status"], catalog.job("boom")["message"]) == ("FAILED", "disk full")
    assert catalog.job("judged")["status"] == "FAILED" and catalog.job("stopped")["status"] == "STOPPED"
    assert catalog.job("exit")["message"] == "too many errors"
    assert [j["id"] for j in catalog.jobs()] and len(catalog.jobs()) == 4


def test_datasets_are_keyed_by_output_and_rewritten_whole(tmp_path):
    catalog = JobCatalog(str(tmp_path / "reg"))
    catalog.record_dataset("file:///data/latents", rows=10, model="m@1")
    catalog.record_dataset("file:///data/latents", rows=12, model="m@2")
    catalog.record_dataset("s3://bucket/latents", rows=3, model="m@2")
    by_output = {d["output"]: d for d in catalog.datasets()}
    assert by_output["file:///data/latents"]["rows"] == 12 and len(by_output) == 2
