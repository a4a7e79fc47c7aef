"""The compress report: Markdown + JSON + an accuracy-vs-latency plot of every stage and bundle.

Every accuracy names its split: test when the user gave one (it chose nothing), else val, and
then the report says in words that the figure is on the selection set.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline import CompressResult
    from .recipe import Recipe


def write_compress_report(result: CompressResult, directory: Path, *, recipe: Recipe) -> dict[str, Path]:
    """compress_report.md, compress_report.json and (with matplotlib) accuracy_vs_latency.png."""
    paths = {
        "markdown": directory / "compress_report.md",
        "json": directory / "compress_report.json",
    }
    paths["markdown"].write_text(to_markdown(result), encoding="utf-8")
    from ..data.splits import describe_split

    payload = {
        "recipe": json.loads(recipe.model_dump_json()),
        "accuracy_split": {
            "split": result.accuracy_split, "held_out": result.held_out,
            "note": describe_split(result.accuracy_split, held_out=result.held_out).replace("**", ""),
        },
        "stages": [asdict(s) for s in result.stages],
        "finetune_comparison": {**result.finetune_comparison, "split": result.accuracy_split},
        "bundles": {name: str(path) for name, path in result.bundles.items()},
        "fallbacks": result.fallbacks,
        "int8_verdicts": result.int8_verdicts,
        "bench": [row.to_dict() for row in result.bench.rows] if result.bench else [],
    }
    paths["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    from .._optional import is_installed

    if is_installed("matplotlib"):
        paths["plot"] = plot_accuracy_vs_latency(result, directory / "accuracy_vs_latency.png")
    return paths


def accuracy_label(result: CompressResult) -> str:
    """ "top-1 (test)" / "mAP50-95 (test)", or "… (val, selection set)" when no held-out split was given."""
    metric = result.stages[0].metric if result.stages else "top-1"
    where = result.accuracy_split if result.held_out else f"{result.accuracy_split}, selection set"
    return f"{metric} ({where})"


def to_markdown(result: CompressResult) -> str:
    from ..data.splits import describe_split
    from .model_score import format_score

    top1 = accuracy_label(result)
    metric = result.stages[0].metric if result.stages else "top-1"
    extras = sorted({name for s in result.stages for name in s.extras})  # e.g. mAP50 beside mAP50-95
    chosen_on_val = ("The accuracy budget (max_accuracy_drop), distillation's best epoch, INT8 accuracy control and "
                     "parity are checked on val.")
    extra_headers = "".join(f" {name} ({result.accuracy_split}) |" for name in extras)
    lines = ["# edgevision compress report", "", describe_split(result.accuracy_split, held_out=result.held_out),
             chosen_on_val, "", "## Stages (torch model)", "",
             f"| stage | params | MMACs | size MiB | torch latency ms (1 thread) | {top1} |{extra_headers} time s |",
             "|---|---|---|---|---|---|" + "---|" * len(extras) + "---|"]
    for s in result.stages:
        extra_cells = "".join(f" {format_score(s.extras[name], name) if name in s.extras else '—'} |" for name in extras)
        lines.append(f"| {s.stage} | {s.params / 1e6:.3f} M | {s.macs / 1e6:.1f} | {s.size_bytes / 2**20:.2f} | "
                     f"{s.torch_latency_ms:.2f} | {format_score(s.accuracy, metric)} |{extra_cells} {s.seconds:.0f} |")
    comparison = result.finetune_comparison
    if "distill" in comparison:
        lines += ["", f"## Distillation vs plain fine-tuning (same epochs, same data; {top1})", "",
                  f"- after pruning, before recovery: {format_score(comparison.get('before', float('nan')), metric)}",
                  f"- knowledge distillation: {format_score(comparison['distill'], metric)} "
                  f"({comparison.get('distill seconds', 0):.0f} s)"]
        if "fine-tune" in comparison:
            lines.append(f"- fine-tuning on labels only: {format_score(comparison['fine-tune'], metric)} "
                         f"({comparison.get('fine-tune seconds', 0):.0f} s)")
    if result.bench is not None:
        from ..bench.report import to_markdown as bench_markdown

        lines += ["", f"## Bundles through their engines ({top1})", "", bench_markdown(result.bench).rstrip()]
    if result.int8_verdicts:
        lines += ["", "## Is INT8 really faster here?", ""]
        lines += [f"- **{fmt}**: {verdict}" for fmt, verdict in result.int8_verdicts.items()]
    if result.fallbacks:
        lines += ["", "## Fallbacks applied", ""] + [f"- {name}: {why}" for name, why in result.fallbacks.items()]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_latency(result: CompressResult, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 5))
    # Points in percent of the task's metric: top-1 %, or mAP50-95 × 100 (the way COCO tables print it).
    for s in result.stages:
        axis.scatter(s.torch_latency_ms, s.accuracy * 100, marker="s", color="tab:gray")
        axis.annotate(f"torch {s.stage}", (s.torch_latency_ms, s.accuracy * 100), fontsize=8, xytext=(4, 4),
                      textcoords="offset points")
    if result.bench is not None:
        for row in result.bench.rows:
            if row.accuracy is None:
                continue
            axis.scatter(row.latency.p50_ms, row.accuracy * 100, color="tab:blue")
            axis.annotate(f"{row.name} ({row.runtime})", (row.latency.p50_ms, row.accuracy * 100), fontsize=7,
                          xytext=(4, -8), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_xlabel("latency, batch 1 (ms, log; torch points at 1 thread, bundles at the bench threads)")
    axis.set_ylabel(f"{accuracy_label(result)} (%)")
    axis.set_title("accuracy vs latency per stage and bundle")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
