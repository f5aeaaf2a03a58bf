"""The report every compress job writes beside its dataset.

    OUTPUT/_aec/report.json   counts, bytes, ratio, throughput over time, errors, quality on a
                              sample, and the job's rate–distortion point against the classic codecs
    OUTPUT/_aec/report.png    the same for a person: R–D point vs the classic-codec curve,
                              originals beside aec's restores and the classic codec's at
                              about the same rate (spectrograms for audio), throughput
    OUTPUT/_aec/report.html   summary table + the picture (linked: report.png beside it)

An exact archive's report has no picture: its summary, and what each codec won (files, bytes).

The classic codecs (JPEG/WebP, Opus, gzip/xz/zstd) and the previews (pictures, spectrograms,
text) come from the modality (``Modality.classic_codecs`` / ``preview``), so nothing here knows
which modality it draws.
"""

from __future__ import annotations

import html
import io
import json
import os
import platform
import posixpath
from typing import TYPE_CHECKING, Any

import numpy as np

from aecore.archive import CodecContext, decode_payload, is_learned, payload_codec
from aecore.compressor import Compressor
from cluster.clock import utc_now
from cluster.storage import InputFile, Location, with_retries
from cluster.table import REPORT_HTML, REPORT_JSON, REPORT_PNG

if TYPE_CHECKING:
    from cluster.dataset import LatentDataset

__all__ = ["write_archive_report", "write_report"]


def _samples(ds: LatentDataset, limit: int) -> list[dict[str, Any]]:
    return ds.dataset.head(limit, columns=["uri", "payload"]).to_pylist()


def _rd(compressor: Compressor, input_loc: Location, by_uri: dict[str, str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    modality = compressor.modality
    metric = modality.gate_metric[0]
    aec, classic, previews, unit = [], {}, [], "rate"
    lossless = compressor.lossless  # then every codec restores exactly: the rate is the comparison
    quality = (lambda x, x_dec: {}) if lossless else modality.quality  # noqa: E731
    for row in rows:
        path = by_uri.get(row["uri"])
        if path is None:
            continue
        sample = compressor.load(with_retries(input_loc.fs.cat_file, path, what="input"))
        codec = payload_codec(row["payload"])
        if codec is not None:  # a classic codec won this file (aecore.archive.lossy): what aec stored all the same
            restored, x_hat = decode_payload(codec, row["payload"], CodecContext()), None
        else:
            restored, x_hat, _ = compressor.decode(row["payload"])
        if x_hat is None:  # lossless or classic: the restored file itself
            x_hat = modality.load(restored).x
        unit, count = sample.info.rate_unit()
        rate = 8.0 * len(row["payload"]) / count
        aec.append({unit: rate, **quality(sample.x, x_hat)})
        if lossless:  # Compressor.load kept the file
            classic.setdefault("input file as is", []).append({unit: 8.0 * len(sample.info.file) / count})
        nearest: tuple[float, str, np.ndarray] | None = None  # the classic decode closest in rate
        for codec, data, x_dec in modality.classic_codecs(sample, lossless=lossless):
            classic_rate = 8.0 * len(data) / count
            classic.setdefault(codec, []).append({unit: classic_rate, **quality(sample.x, x_dec)})
            if not lossless and (nearest is None or abs(classic_rate - rate) < nearest[0]):
                nearest = (abs(classic_rate - rate), f"{codec} ({classic_rate:.3g} {unit})", x_dec)
        reference = None if nearest is None else nearest[1:]
        previews.append({"uri": row["uri"], "aec_rate": f"{rate:.3g} {unit}", **modality.preview(sample, x_hat, reference)})
    if lossless:
        metric = unit

    def mean(points: list[dict[str, float]]) -> dict[str, float]:
        keys = set.intersection(*(set(p) for p in points)) if points else set()
        return {k: float(np.mean([p[k] for p in points])) for k in sorted(keys)}

    return {"metric": metric, "rate_unit": unit, "samples": len(aec), "aec": mean(aec),
            "classic": {codec: mean(points) for codec, points in classic.items()}, "previews": previews}


def _throughput(run: dict[str, Any]) -> list[dict[str, float]]:
    """Rows committed by this run over time, and the rate since the previous commit."""
    timeline = run.get("timeline") or []
    out = []
    for (t0, r0), (t1, r1) in zip([(0.0, 0)] + timeline, timeline):
        out.append({"t": t1, "rows": r1, "rows_per_second": (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0})
    return out


def _figure(report: dict[str, Any], rd: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    previews = rd["previews"][:3]
    columns = max([2] + [len(p["panels"]) for p in previews])
    fig = plt.figure(figsize=(6 * columns, 4 + 2.6 * max(1, len(previews))), constrained_layout=True)
    grid = fig.add_gridspec(1 + max(1, len(previews)), columns)
    ax = fig.add_subplot(grid[0, : columns - 1])
    metric, unit = rd["metric"], rd["rate_unit"]
    if metric == unit:  # lossless: the rate is the whole story
        names = ["aec"] + list(rd["classic"])
        values = [rd["aec"].get(unit, np.nan)] + [p.get(unit, np.nan) for p in rd["classic"].values()]
        ax.barh(names, values, color=["tab:red"] + ["tab:gray"] * len(rd["classic"]))
        ax.set_xlabel(f"{unit} (lower is better; all lossless)")
    else:
        families: dict[str, list[tuple[float, float]]] = {}
        for codec, p in rd["classic"].items():
            if unit in p and metric in p:
                families.setdefault(codec.split()[0], []).append((p[unit], p[metric]))
        for family, pts in families.items():
            pts.sort()
            ax.plot([a for a, _ in pts], [b for _, b in pts], "o-", label=family, alpha=0.8)
        if unit in rd["aec"] and metric in rd["aec"]:
            ax.plot([rd["aec"][unit]], [rd["aec"][metric]], "*", color="tab:red", markersize=16, label="aec (this job)")
        ax.set_xlabel(unit)
        ax.set_ylabel(metric)
        ax.legend()
    kind = "rate (lossless)" if metric == unit else "rate–distortion"
    ax.set_title(f"{kind} on {rd['samples']} sampled files")
    ax = fig.add_subplot(grid[0, columns - 1])
    tp = report["throughput"]["timeline"]
    if tp:
        ax.step([0.0] + [p["t"] for p in tp], [0] + [p["rows"] for p in tp], where="post", marker="o")
    ax.set_xlabel("seconds since the job started")
    ax.set_ylabel("rows committed (this run)")
    ax.set_title(f"throughput: {report['throughput']['rows_per_second']:.1f} rows/s overall")
    for i, p in enumerate(previews):
        for j, (title, data) in enumerate(p["panels"]):
            ax = fig.add_subplot(grid[1 + i, j])
            if p["kind"] == "image":
                ax.imshow(data, interpolation="nearest")
                ax.axis("off")
            elif p["kind"] == "spectrogram":
                seconds = data.shape[1] * p["hop"] / p["rate"]
                ax.imshow(data, origin="lower", aspect="auto", cmap="magma", vmin=-100, vmax=0,
                          extent=(0, seconds, 0, p["rate"] / 2000))
                ax.set_xlabel("s")
                ax.set_ylabel("kHz")
            elif p["kind"] == "text":
                ax.text(0, 1, data[:400], va="top", ha="left", family="monospace", fontsize=7, wrap=True)
                ax.axis("off")
            label = f"aec ({p['aec_rate']})" if title == "aec" else title
            ax.set_title(f"{label}: {posixpath.basename(p['uri'])}", fontsize=9)
    fig.suptitle(f"aec compress report — {report['dataset']} ({report['model']})")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    plt.close(fig)
    return _small_png(buf.getvalue())


def _small_png(png: bytes) -> bytes:
    """The figure in a 256-colour palette (a chart and thumbnails lose nothing a reader sees): the
    report stays a few hundred KB, not megabytes."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        out = io.BytesIO()
        img.convert("RGB").quantize(colors=256).save(out, format="PNG", optimize=True)
    return out.getvalue() if out.tell() < len(png) else png


def _cell(v: Any) -> str:
    return html.escape(json.dumps(v, default=float) if isinstance(v, dict | list) else str(v))


def _html(report: dict[str, Any], picture: bool = True) -> str:
    """Summary table (+ the picture beside it in ``_aec/``, linked, not embedded) and the errors."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>"
                   for k, v in report["summary"].items())
    codecs = report.get("codecs") or []
    table = ""
    if codecs:
        head = "".join(f"<th>{html.escape(k)}</th>" for k in codecs[0])
        body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in codecs)
        table = f"<h2>files and bytes by modality and codec</h2><table><tr>{head}</tr>{body}</table>"
    errors = "".join(f"<li><code>{html.escape(e['uri'])}</code>: {html.escape(e.get('reason', ''))}</li>"
                     for e in report["errors"]["first"])
    return (f"<!doctype html><meta charset='utf-8'><title>aec report {html.escape(report['dataset'])}</title>"
            f"<h1>aec compress report</h1><table>{rows}</table>{table}"
            + (f"<img alt='report' src='{posixpath.basename(REPORT_PNG)}'>" if picture else "")
            + f"<h2>errors ({report['errors']['count']})</h2><ul>{errors or '<li>none</li>'}</ul>")


def _report(ds: LatentDataset, run: dict[str, Any], errors: list[dict[str, Any]], modality: str | None,
            summary: dict[str, Any]) -> dict[str, Any]:
    """What every job's report holds: the dataset, this run, throughput, errors, the machine."""
    seconds = float(run.get("seconds") or 0.0)
    encoded_bytes = run.get("input_bytes") or 0
    return {
        "dataset": ds.location.url,
        "model": ds.metadata.get("model_ref"),
        "version": ds.version,
        "modality": modality,
        "generated_at": utc_now(),
        "summary": {**summary, "this run": {"inputs": run.get("inputs"), "skipped": run.get("skipped"),
                                            "encoded": run.get("rows"), "seconds": seconds}},
        "throughput": {"rows_per_second": (run.get("rows") or 0) / seconds if seconds else 0.0,
                       "input_mb_per_second": encoded_bytes / seconds / 1e6 if seconds else 0.0,
                       "timeline": _throughput(run)},
        "errors": {"count": len(errors), "first": errors[:20]},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }


def _publish(output: Location, report: dict[str, Any], png: bytes | None) -> None:
    """report.json, the picture (when there is one) and the page, beside the dataset."""
    fs, where = output.fs, f"output {output.url!r}"
    with_retries(fs.pipe_file, posixpath.join(output.path, REPORT_JSON),
                 json.dumps(report, indent=2, default=float).encode(), what=where)
    if png is not None:
        with_retries(fs.pipe_file, posixpath.join(output.path, REPORT_PNG), png, what=where)
    with_retries(fs.pipe_file, posixpath.join(output.path, REPORT_HTML), _html(report, picture=png is not None).encode(),
                 what=where)


def write_report(ds: LatentDataset, input_loc: Location, files: list[InputFile], compressor: Compressor,
                 run: dict[str, Any], sample_size: int = 3) -> dict[str, Any]:
    """Write report.json / .png / .html beside the dataset (``run``: the job's run record)."""
    errors = ds.errors()
    totals = ds.totals(errors)
    by_uri = {input_loc.uri(f.path): f.path for f in files}
    rd = _rd(compressor, input_loc, by_uri, _samples(ds, sample_size))
    report = _report(ds, run, errors, compressor.modality.name, {
        "rows": totals["rows"], "errors": totals["errors"], "input_bytes": totals["input_bytes"],
        "payload_bytes": totals["payload_bytes"], "parquet_bytes": totals["parquet_bytes"],
        "ratio": totals["ratio"], "quality (sample)": totals["quality"]})
    report["rate_distortion"] = {k: v for k, v in rd.items() if k != "previews"}
    _publish(ds.location, report, _figure(report, rd))
    return report


def write_archive_report(ds: LatentDataset, run: dict[str, Any]) -> dict[str, Any]:
    """An archive's report (report.json / .html): counts, bytes on storage and the on-disk ratio,
    what each codec won (files, bytes, payloads) and the learned codecs' share, throughput and
    errors. No picture: the tables are the story (a lossy row's quality is in its own record)."""
    errors = ds.errors()
    totals = ds.totals(errors)
    breakdown = ds.breakdown()
    files = sum(r["files"] for r in breakdown if r["codec"] not in ("dir", "symlink")) or 1
    size = totals["input_bytes"] or 1
    codecs = [{"modality": r["modality"], "codec": r["codec"], "files": r["files"],
               "share of files": round(r["files"] / files, 4), "bytes in": r["bytes"],
               "share of bytes": round(r["bytes"] / size, 4), "payload bytes": r["payload_bytes"]}
              for r in breakdown]
    report = _report(ds, run, errors, ds.metadata.get("modality"), {
        "rows": totals["rows"], "errors": totals["errors"], "input_bytes": totals["input_bytes"],
        "payload_bytes": totals["payload_bytes"], "stored_bytes": totals["stored_bytes"],
        "ratio (input / on disk)": totals["ratio"],
        "learned share of bytes": round(sum(r["bytes in"] for r in codecs if is_learned(r["codec"])) / size, 4)})
    report["codecs"] = codecs
    _publish(ds.location, report, None)
    return report
