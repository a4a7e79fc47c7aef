"""What the detection and segmentation parts of docs/benchmarks.md share: the main table, the engine choice for
the full pipeline, targets, the recovery table and the notes on what limits the figures.

Each task names its metric and wording in a `TaskDoc`; every number and verdict comes from the payload.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REFERENCE, E2E = "oneliner", "@e2e"


@dataclass(frozen=True)
class TaskDoc:
    """How one task's section names its figures."""

    metric: str  # the row key of the accuracy ("map50_95", "miou")
    name: str  # its column title ("mAP50-95", "mIoU")
    short: str  # how the prose says it ("mAP", "mIoU")
    second: str  # the row key of the figure beside it ("map50", "pixel_accuracy")
    second_name: str  # its column title ("mAP50", "pixel acc.")
    noun: str  # "detector", "segmenter"
    full: str  # how edgevision full is made, in the chosen row's label ("prune + KD + INT8 head-float")
    int8: str  # the INT8 of the full candidates ("INT8 head-float", "INT8")
    main_rows: tuple[str, ...]  # rows of the main table, in order; the chosen full-pipeline row follows them


def task_section(found: dict | None, settings: dict, doc: TaskDoc, *, method: Callable[[dict, dict], list[str]],
                 limits: Callable[[dict], list[str]]) -> list[str]:
    """The table, the engine choice for the full pipeline, targets, recovery and what limits them.

    `settings`: the run's; a section merged from another run (`--merge`) carries its own.
    """
    if not found:
        return []
    settings = found.get("settings") or settings
    rows, labels, best = found["rows"], found["labels"], found["best_engine"]
    height, width = found["input_size"]
    lines = [f"## {found['title']}", "", *method(found, settings), "",
             ("| | engine (computes in) | inference p50 ms | p90 ms | post ms | end to end p50 ms | size MB | GMACs "
              f"| {doc.name} | {doc.second_name} | Δ {doc.name} pt | × one-liner e2e | × one-liner inference |"),
             "|" + "---|" * 13]
    fp32 = rows.get("eager", {}).get(doc.metric)
    shown = [k for k in doc.main_rows if k in rows] + ([best] if best else [])
    for key in shown:
        label = f"**edgevision full ({doc.full}) on {rows[key]['runtime']}**" if key == best else labels[key]
        lines.append(_row(doc, label, key, rows[key], fp32, found["ratios"]))
    lines += ["", (f"{doc.short} on the **test split** ({found.get('accuracy_images') or '?'} images), {height}×{width} "
                   "letterboxed, through the row's engine and edgevision's post-processing; Δ against PyTorch eager "
                   "FP32. × one-liner: median of the per-round paired ratios of p50 (min–max over rounds), end to "
                   "end and inference alone."), ""]
    if found["failures"]:
        lines += ["Could not be built (so not measured):", ""]
        lines += [f"- {labels.get(k, k)}: {why}" for k, why in found["failures"].items()] + [""]
    lines += _candidates(doc, found)
    lines += ["Targets:", "", "| target | needed | measured | |", "|---|---|---|---|"]
    for target in found["targets"]:
        lines.append(f"| {target['name']} | {target['target']} | {target['measured']} | "
                     f"{'met' if target['met'] else '**MISSED**'} |")
    compression = "; ".join(f"{k}: {v}" for k, v in found.get("compression", {}).items() if v)
    if compression:
        lines += ["", f"Compression: {compression}."]
    lines += recovery_table(doc, found.get("recovery") or {}, fp32)
    lines += ["", "What limits it:", ""] + [f"- {note}" for note in limits(found)] + [""]
    return lines


def _row(doc: TaskDoc, label: str, key: str, row: dict, fp32: float | None, ratios: dict) -> str:
    found = row.get(doc.metric)
    delta = "—" if found is None or fp32 is None else f"{(found - fp32) * 100:+.2f}"
    e2e = row.get("end_to_end", {}).get("p50_ms")
    same = key == REFERENCE
    return (f"| {label} | {row['runtime']} ({row['engine_precision']}) | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | "
            f"{_f(row.get('post_p50_ms'))} | {_f(e2e)} | {row['size_mb']:.2f} | {_gmacs(row.get('macs'))} | "
            f"{_f(found)} | {_f(row.get(doc.second))} | {delta} | "
            f"{'1.00×' if same else _ratio(ratios, REFERENCE + E2E, key + E2E)} | "
            f"{'1.00×' if same else _ratio(ratios, REFERENCE, key)} |")


def recovery_table(doc: TaskDoc, recovery: dict, fp32: float | None) -> list[str]:
    """Distillation against plain fine-tuning from the same pruned model on the same budget (torch FP32)."""
    if not recovery.get("distill"):
        return []
    key, second = doc.metric, doc.second
    lines = ["", "Recovery after pruning, the same epochs, batch and schedule (PyTorch FP32; val chose each epoch):", "",
             (f"| pruned {doc.noun} | best epoch | val {doc.name} | test {doc.name} | test {doc.second_name} "
              f"| Δ test {doc.name} vs FP32 pt |"),
             "|---|---|---|---|---|---|"]
    for mode, label in (("pruned", "after pruning, before recovery"), ("fine-tune", "fine-tuned on labels"),
                        ("distill", "**distilled from the original**")):
        found = recovery.get(mode)
        if not found:
            continue
        delta = "—" if fp32 is None else f"{(found[f'test_{key}'] - fp32) * 100:+.2f}"
        lines.append(f"| {label} | {found.get('best_epoch', '—')} | {found[f'val_{key}']:.3f} | "
                     f"{found[f'test_{key}']:.3f} | {found[f'test_{second}']:.3f} | {delta} |")
    return lines


def _candidates(doc: TaskDoc, found: dict) -> list[str]:
    rows, best, labels = found["rows"], found["best_engine"], found["labels"]
    candidates = [k for k in found["full_candidates"] if k in rows]
    if not candidates:
        return []
    lines = [f"Choosing the engine for the full pipeline (same pruned + distilled weights, {doc.int8} each):", "",
             f"| candidate | inference p50 ms | end to end p50 ms | {doc.name} | × one-liner e2e | chosen |",
             "|---|---|---|---|---|---|"]
    for key in candidates:
        row = rows[key]
        lines.append(f"| {labels[key]} | {row['p50_ms']:.3f} | {_f(row.get('end_to_end', {}).get('p50_ms'))} | "
                     f"{_f(row.get(doc.metric))} | {_ratio(found['ratios'], REFERENCE + E2E, key + E2E)} | "
                     f"{'**yes**' if key == best else ''} |")
    return lines + [""]


def fixed_cost_notes(found: dict, *, fixed: str, kept_float: str) -> list[str]:
    """Where the one-liner's end-to-end time goes (`fixed`: what does not shrink with the model) and what pruning
    bought (`kept_float`: what edgevision keeps in float that the one-liner quantises, or "")."""
    rows, ratios, macs, best = found["rows"], found["ratios"], found["macs"], found["best_engine"]
    notes = []
    reference = rows.get(REFERENCE)
    if reference and reference.get("end_to_end"):
        e2e, inference = reference["end_to_end"]["p50_ms"], reference["p50_ms"]
        rest = max(e2e - inference, 0.0)
        notes.append(
            f"The one-liner spends {inference:.2f} of its {e2e:.2f} ms end to end in inference; the other "
            f"{rest:.2f} ms ({fixed}) do not shrink with the model, so "
            "no compression of the network alone can make the whole frame more than "
            f"{e2e / rest:.1f}× faster than the one-liner." if rest > 0 else
            f"The one-liner's end-to-end p50 is {e2e:.2f} ms, its inference p50 {inference:.2f} ms.")
    if best and macs.get("compressed") and macs.get("original"):
        gain = ratios.get(f"{REFERENCE}/{best}")
        cut = macs["original"] / macs["compressed"]
        text = (f"Pruning cut MACs {cut:.2f}× ({macs['original'] / 1e9:.3f} → {macs['compressed'] / 1e9:.3f} GMACs)")
        if gain:
            text += (f"; inference alone is {gain['median']:.2f}× the one-liner's speed (min–max "
                     f"{gain['min']:.2f}–{gain['max']:.2f}){kept_float}")
        notes.append(text + ".")
    return notes


def closing_notes(doc: TaskDoc, found: dict) -> list[str]:
    """The missed targets, plainly, and how often the accuracy was measured."""
    notes = []
    missed = [t for t in found["targets"] if not t["met"]]
    if missed:
        notes.append("Missed here: " + "; ".join(f"{t['name']} ({t['measured']}, needed {t['target']})"
                                                 for t in missed)
                     + ". These are the figures this configuration measured; nothing was tuned on the test split.")
    images = found.get("accuracy_images")
    if images:
        notes.append(f"{doc.short} is measured once per row on the same {images} test images (no repeats, so no "
                     "spread is given for it).")
    return notes


def section_provenance(found: dict | None) -> list[str]:
    """Where the section's models came from: built in this run, or reused (with the commit that built them)."""
    if not found:
        return []
    parts = []
    for name, item in (found.get("provenance") or {}).items():
        commit = str((item.get("built_by") or {}).get("commit", "unknown"))
        commit = commit[:12] if len(commit) == 40 else commit
        parts.append(f"{name} reused from `{Path(item['path']).name}` ({commit})" if item.get("reused")
                     else f"{name} built in this run")
    return [f"- **{found['title']} models:** " + "; ".join(parts)] if parts else []


def _ratio(ratios: dict, reference: str, candidate: str) -> str:
    found = ratios.get(f"{reference}/{candidate}")
    return "—" if found is None else f"{found['median']:.2f}× ({found['min']:.2f}–{found['max']:.2f})"


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _gmacs(value: int | None) -> str:
    return "—" if value is None else f"{value / 1e9:.3f}"


# Number formats shared by the doc renderers (benchmark_doc, benchmark_doc_vit).
def format_num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def format_pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"
