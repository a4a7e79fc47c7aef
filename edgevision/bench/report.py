"""Bench reports as a rich table, JSON and CSV."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rich.table import Table

from .result import BenchReport, BenchResult, LatencyStats

#: Each task's second figure beside its headline metric: (key in BenchResult.metrics, column header).
SECOND_METRICS = {"detect": ("mAP50", "mAP50"), "segment": ("pixel_accuracy", "pixel acc.")}


def to_table(report: BenchReport, *, title: str = "edgevision bench") -> Table:
    base = report.rows[report.baseline]
    table = Table(title=title, title_justify="left", caption=f"speed-up vs {base.label} (median latency per image)")
    post = _has_postprocessing(report)
    seconds = _second_metrics(report)
    # A detection or segmentation row adds post-processing, end-to-end and its second metric (mAP50, pixel
    # accuracy); p99 and mean±std make room for them in a terminal (they stay in the JSON/CSV/Markdown reports).
    headers = ["bundle", "runtime", "engine prec.", "thr", "p50 ms", "p90 ms"]
    headers += ["post p50 ms", "e2e p50 ms"] if post else ["p99 ms", "mean±std ms"]
    headers += ["img/s", "speed-up", "peak RSS MB", "size MB", accuracy_header(report)]
    headers += [f"{header} ({_splits(report)})" if _splits(report) else header for _, header in seconds]
    names = {"bundle": [row.name for row in report.rows], "runtime": [row.runtime for row in report.rows]}
    for header in headers:
        # Names never truncate (two bundles differ only in their last letters); number headers wrap instead.
        widest = max(map(len, names.get(header, [""])))
        table.add_column(header, justify="left" if header in {"bundle", "runtime", "engine prec."} else "right",
                         min_width=widest or None, no_wrap=header in names)
    for index, row in enumerate(report.rows):
        lat = row.latency
        speedup = f"{report.speedup(row):.2f}×"
        cells = [
            row.name, row.runtime, row.engine_precision, "def" if row.threads is None else str(row.threads),
            f"{lat.p50_ms:.3f}", f"{lat.p90_ms:.3f}",
        ]
        cells += (
            [_p50(row.postprocess), _p50(row.end_to_end)] if post
            else [f"{lat.p99_ms:.3f}", f"{lat.mean_ms:.3f}±{lat.std_ms:.3f}"]
        )
        cells += [
            f"{row.throughput_ips:.0f}", f"[bold]{speedup}[/]" if index != report.baseline else "1.00× (base)",
            f"{row.peak_rss_mb:.0f}", f"{row.size_mb:.2f}", _metric(row),
        ]
        cells += [_map(row.metrics.get(key)) for key, _ in seconds]
        table.add_row(*cells)
    return table


def accuracy_header(report: BenchReport) -> str:
    """ "top-1 (test)", "mAP50-95 (test)": the accuracy column names its metric and the split it was measured on."""
    metrics = sorted({row.metric for row in report.rows}) or ["top-1"]
    splits = _splits(report)
    return f"{' / '.join(metrics)} ({splits})" if splits else " / ".join(metrics)


def _splits(report: BenchReport) -> str:
    return ", ".join(sorted({row.accuracy_split for row in report.rows if row.accuracy is not None and row.accuracy_split}))


def _has_postprocessing(report: BenchReport) -> bool:
    """Rows whose task post-processes on the device (detect: decode + NMS; segment: argmax + upsampling)."""
    return any(row.task in SECOND_METRICS for row in report.rows)


def _second_metrics(report: BenchReport) -> list[tuple[str, str]]:
    tasks = {row.task for row in report.rows}
    return [SECOND_METRICS[task] for task in SECOND_METRICS if task in tasks]


def _p50(stats: LatencyStats | None) -> str:
    return "—" if stats is None else f"{stats.p50_ms:.3f}"


def _map(value: float | None) -> str:
    """mAP (or pixel accuracy) as the 0..1 number papers print (as the mAP50-95 / mIoU column does)."""
    return "—" if value is None else f"{value:.3f}"


def _metric(row: BenchResult) -> str:
    """Top-1 as a percentage; mAP and mIoU as the 0..1 numbers papers print."""
    if row.accuracy is None:
        return "—"
    return f"{row.accuracy:.2%}" if row.metric == "top-1" else f"{row.accuracy:.3f}"


def write_json(report: BenchReport, path: Path) -> Path:
    payload = {
        "settings": report.settings,
        "baseline": report.rows[report.baseline].name,
        "rows": [{**row.to_dict(with_samples=True), "speedup_vs_baseline": report.speedup(row)} for row in report.rows],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


CSV_COLUMNS = ("name", "runtime", "format", "precision", "engine_precision", "threads", "batch_size", "p50_ms", "p90_ms",
               "p99_ms", "mean_ms", "std_ms", "throughput_ips", "speedup_vs_baseline", "peak_rss_mb", "size_mb", "accuracy",
               "engine_config", "accuracy_split", "task", "metric", "map50", "postprocess_p50_ms", "end_to_end_p50_ms",
               "pixel_accuracy")


def write_csv(report: BenchReport, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in report.rows:
            lat = row.latency
            writer.writerow([
                row.name, row.runtime, row.format, row.precision, row.engine_precision, row.threads, row.batch_size,
                f"{lat.p50_ms:.4f}", f"{lat.p90_ms:.4f}", f"{lat.p99_ms:.4f}", f"{lat.mean_ms:.4f}", f"{lat.std_ms:.4f}",
                f"{row.throughput_ips:.2f}", f"{report.speedup(row):.3f}", f"{row.peak_rss_mb:.1f}", f"{row.size_mb:.3f}",
                "" if row.accuracy is None else f"{row.accuracy:.4f}", format_engine_config(row.engine_config),
                row.accuracy_split or "", row.task, row.metric,
                "" if "mAP50" not in row.metrics else f"{row.metrics['mAP50']:.4f}",
                "" if row.postprocess is None else f"{row.postprocess.p50_ms:.4f}",
                "" if row.end_to_end is None else f"{row.end_to_end.p50_ms:.4f}",
                "" if "pixel_accuracy" not in row.metrics else f"{row.metrics['pixel_accuracy']:.4f}",
            ])
    return path


def format_engine_config(config: dict[str, str | int | bool | None]) -> str:
    """One cell: "key=value" pairs in the engine's order, unset (None) settings left out."""
    return " ".join(f"{key}={value}" for key, value in config.items() if value is not None)


def to_markdown(report: BenchReport) -> str:
    """A Markdown table (for README / docs)."""
    post = _has_postprocessing(report)
    seconds = _second_metrics(report)
    columns = ["bundle", "runtime", "engine precision", "threads", "p50 ms", "p90 ms"]
    columns += ["post-processing p50 ms", "end-to-end p50 ms"] if post else []
    columns += ["img/s", "speed-up", "peak RSS MB", "size MB", accuracy_header(report)]
    columns += [header for _, header in seconds]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in report.rows:
        cells = [row.name, row.runtime, row.engine_precision, str(row.threads or "default"),
                 f"{row.latency.p50_ms:.3f}", f"{row.latency.p90_ms:.3f}"]
        cells += [_p50(row.postprocess), _p50(row.end_to_end)] if post else []
        cells += [f"{row.throughput_ips:.0f}", f"{report.speedup(row):.2f}×", f"{row.peak_rss_mb:.0f}",
                  f"{row.size_mb:.2f}", _metric(row)]
        cells += [_map(row.metrics.get(key)) for key, _ in seconds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_report(report: BenchReport, out_dir: Path) -> dict[str, Path]:
    """Write bench.json, bench.csv, bench.md and (when matplotlib is installed) latency.png."""
    from .._optional import is_installed

    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "json": write_json(report, out_dir / "bench.json"),
        "csv": write_csv(report, out_dir / "bench.csv"),
    }
    (out_dir / "bench.md").write_text(to_markdown(report), encoding="utf-8")
    written["markdown"] = out_dir / "bench.md"
    if is_installed("matplotlib"):
        from .plots import plot_latency

        written["plot"] = plot_latency(report, out_dir / "latency.png")
    return written
