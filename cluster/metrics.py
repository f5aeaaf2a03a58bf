"""Metric names, defined once: what encoder actors, job drivers and the scheduler export.

    encoder actors  -> ray.util.metrics      -> the node's --metrics-export-port (prefix ray_)
    job drivers     -> prometheus_client     -> AEC_METRICS_PORT (aec cluster up: 8081)
    scheduler       -> prometheus_client     -> aec scheduler run --metrics-port (8082)

``python -m cluster.metrics`` prints the Grafana dashboard generated from :data:`METRICS`
(``deploy/grafana/aec-dashboard.json`` is its output; a test keeps the two equal).
Tag keys avoid ``job``: Prometheus renames a scraped ``job`` label to ``exported_job``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["METRICS", "ActorMetrics", "MetricDef", "ProcessMetrics", "grafana_dashboard", "exposed_name"]

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge", "histogram"]
Source = Literal["actor", "driver", "scheduler"]


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: Kind
    help: str
    tags: tuple[str, ...]
    source: Source
    unit: str = "short"  # Grafana unit of the panel
    buckets: tuple[float, ...] = ()


_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

METRICS: tuple[MetricDef, ...] = (
    MetricDef("aec_encoder_items", "counter", "Inputs an encoder actor turned into latent rows", ("model", "job_name"), "actor"),
    MetricDef("aec_encoder_bytes_in", "counter", "Bytes of input files read by encoder actors", ("model", "job_name"),
              "actor", "bytes"),
    MetricDef("aec_encoder_bytes_out", "counter", "Payload bytes written by encoder actors", ("model", "job_name"),
              "actor", "bytes"),
    MetricDef("aec_encoder_errors", "counter", "Inputs that became error rows", ("model", "job_name"), "actor"),
    MetricDef("aec_encoder_batch_seconds", "histogram", "Seconds an encoder actor spent on one batch",
              ("model", "job_name"), "actor", "s", _LATENCY_BUCKETS),
    MetricDef("aec_job_progress", "gauge", "Fraction of a compress job's inputs committed (0..1)", ("job_name",), "driver",
              "percentunit"),
    MetricDef("aec_job_rows_committed", "gauge", "Rows committed by a compress job so far", ("job_name",), "driver"),
    MetricDef("aec_job_rows_per_second", "gauge", "Rows committed per second since the job started", ("job_name",), "driver"),
    MetricDef("aec_job_compression_ratio", "gauge",
              "Input bytes / bytes on storage (the parts a running job wrote; the whole table when done)",
              ("job_name",), "driver"),
    MetricDef("aec_job_errors", "gauge", "Error rows committed by a compress job so far", ("job_name",), "driver"),
    MetricDef("aec_schedule_runs", "counter", "Scheduled runs by outcome (submitted, succeeded, failed, skipped_overlap, missed)",
              ("schedule", "outcome"), "scheduler"),
    MetricDef("aec_schedule_last_success_timestamp_seconds", "gauge", "Unix time of a schedule's last successful run "
              "(the last successful retrain, for train schedules)", ("schedule",), "scheduler", "dateTimeAsIso"),
    MetricDef("aec_promotions", "counter", "Promotion-gate outcomes of retraining jobs (promoted, kept)", ("model", "outcome"),
              "scheduler"),
)

_BY_NAME = {m.name: m for m in METRICS}


def exposed_name(m: MetricDef) -> str:
    """The name Prometheus stores: Ray prefixes ``ray_``; counters end in ``_total``."""
    name = f"ray_{m.name}" if m.source == "actor" else m.name
    return f"{name}_total" if m.kind == "counter" else name


class ActorMetrics:
    """The encoder actors' metrics, through ``ray.util.metrics`` (aggregated by Ray per node)."""

    def __init__(self, tags: dict[str, str]) -> None:
        from ray.util import metrics as rm

        self.tags = tags
        self._m: dict[str, Any] = {}
        for m in METRICS:
            if m.source != "actor":
                continue
            if m.kind == "counter":
                self._m[m.name] = rm.Counter(m.name, description=m.help, tag_keys=m.tags)
            elif m.kind == "gauge":
                self._m[m.name] = rm.Gauge(m.name, description=m.help, tag_keys=m.tags)
            else:
                self._m[m.name] = rm.Histogram(m.name, description=m.help, boundaries=list(m.buckets), tag_keys=m.tags)

    def inc(self, name: str, value: float = 1.0) -> None:
        if value:
            self._m[name].inc(value, tags=self.tags)

    def observe(self, name: str, value: float) -> None:
        self._m[name].observe(value, tags=self.tags)


class ProcessMetrics:
    """Driver or scheduler metrics with prometheus_client, served over HTTP when a port is given.

    A port already taken (another job's driver on the same head) is logged and skipped:
    metrics must never fail a job.
    """

    def __init__(self, source: Source, port: int | None = None, host: str | None = None) -> None:
        import prometheus_client as pc

        self.registry = pc.CollectorRegistry()
        self._m: dict[str, Any] = {}
        for m in METRICS:
            if m.source != source:
                continue
            cls = {"counter": pc.Counter, "gauge": pc.Gauge, "histogram": pc.Histogram}[m.kind]
            name = m.name[: -len("_total")] if m.name.endswith("_total") else m.name
            self._m[m.name] = cls(name, m.help, list(m.tags), registry=self.registry)
        self.port: int | None = None
        self._server: Any = None
        if port is not None:
            try:
                self._server, _ = pc.start_http_server(port, addr=host or os.environ.get("AEC_METRICS_HOST", "127.0.0.1"),
                                                       registry=self.registry)
                self.port = port
            except OSError as exc:
                log.warning("metrics port %s unavailable (%s); this process exports no metrics", port, exc)

    @classmethod
    def from_env(cls, source: Source) -> ProcessMetrics:
        port = os.environ.get("AEC_METRICS_PORT")
        return cls(source, int(port) if port else None)

    def set(self, name: str, value: float, **tags: str) -> None:
        self._m[name].labels(**tags).set(value)

    def inc(self, name: str, value: float = 1.0, **tags: str) -> None:
        self._m[name].labels(**tags).inc(value)

    def close(self, linger: float | None = None) -> None:
        """Stop serving. A job's driver lingers ``AEC_METRICS_LINGER_SECONDS`` (default 15 s, one
        scrape interval of deploy/prometheus) first, so its final values get scraped."""
        if self._server is None:
            return
        if linger is None:
            linger = float(os.environ.get("AEC_METRICS_LINGER_SECONDS", "15"))
        if linger > 0:
            import time

            time.sleep(linger)
        self._server.shutdown()
        self._server = None


def grafana_dashboard() -> dict[str, Any]:
    """A Grafana dashboard with one panel per metric of :data:`METRICS` (Prometheus datasource)."""
    panels = []
    for i, m in enumerate(METRICS):
        name = exposed_name(m)
        if m.kind == "counter":
            expr, title = f"sum by ({', '.join(m.tags)}) (rate({name}[1m]))", f"{m.name} (per second)"
        elif m.kind == "histogram":
            expr = f"histogram_quantile(0.95, sum by (le) (rate({name}_bucket[5m])))"
            title = f"{m.name} (p95)"
        else:
            expr, title = name, m.name
        panels.append({
            "id": i + 1,
            "type": "timeseries",
            "title": title,
            "description": m.help,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
            "fieldConfig": {"defaults": {"unit": m.unit}, "overrides": []},
            "targets": [{"refId": "A", "expr": expr, "legendFormat": " ".join(f"{{{{{t}}}}}" for t in m.tags)}],
        })
    return {
        "title": "aec — compression jobs",
        "uid": "aec-jobs",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "10s",
        "tags": ["aec", "ray"],
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "panels": panels,
    }


if __name__ == "__main__":
    json.dump(grafana_dashboard(), sys.stdout, indent=2)
    sys.stdout.write("\n")
