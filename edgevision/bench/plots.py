"""PNG plots of a bench run (matplotlib, imported only here; extra 'plots')."""

from __future__ import annotations

from pathlib import Path

from .._optional import require
from .result import BenchReport


def plot_latency(report: BenchReport, path: Path) -> Path:
    """Per-row latency distribution (box plot over every timed call), one row per bundle × runtime."""
    matplotlib = require("matplotlib", extra="plots", what="matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [row.label for row in report.rows]
    figure, axis = plt.subplots(figsize=(9, 0.55 * len(labels) + 1.6))
    axis.boxplot([row.samples_ms for row in report.rows], vert=False, showfliers=True, flierprops={"markersize": 2})
    axis.set_yticks(range(1, len(labels) + 1), labels)
    axis.set_xscale("log")
    axis.set_xlabel("latency per call (ms, log scale)")
    axis.set_title("edgevision bench: latency distribution per row")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
