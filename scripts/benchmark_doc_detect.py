"""The detection part of docs/benchmarks.md, from the payload's "detection" entry (scripts/benchmark_detect.py).

Every number, verdict and limit is computed from the payload; the prose only says how they were taken.
"""

from __future__ import annotations

from pathlib import Path

#: Rows of the main table, in order; the fastest full-pipeline engine follows them.
MAIN_ROWS = ("eager", "ort_fp32", "ov_fp32", "oneliner", "hf_openvino", "hf_onnxruntime", "hf_tflite")
REFERENCE, E2E = "oneliner", "@e2e"


def detection_section(found: dict | None, settings: dict) -> list[str]:
    """The detection table, the engine choice for the full pipeline, targets and what limits them."""
    if not found:
        return []
    rows, labels, best = found["rows"], found["labels"], found["best_engine"]
    height, width = found["input_size"]
    lines = [f"## {found['title']}", "", *method(found, settings), "",
             ("| | engine (computes in) | inference p50 ms | p90 ms | post ms | end to end p50 ms | size MB | GMACs "
              "| mAP50-95 | mAP50 | Δ mAP50-95 pt | × one-liner e2e | × one-liner inference |"),
             "|" + "---|" * 13]
    fp32 = rows.get("eager", {}).get("map50_95")
    shown = [k for k in MAIN_ROWS if k in rows] + ([best] if best else [])
    for key in shown:
        label = f"**edgevision full (prune + KD + INT8 head-float) on {rows[key]['runtime']}**" if key == best \
            else labels[key]
        lines.append(_row(label, key, rows[key], fp32, found["ratios"]))
    lines += ["", (f"mAP on the **test split** ({found.get('accuracy_images') or '?'} images), {height}×{width} "
                   "letterboxed, through the row's engine and edgevision's post-processing; Δ against PyTorch eager "
                   "FP32. × one-liner: median of the per-round paired ratios of p50 (min–max over rounds), end to "
                   "end and inference alone."), ""]
    if found["failures"]:
        lines += ["Could not be built (so not measured):", ""]
        lines += [f"- {labels.get(k, k)}: {why}" for k, why in found["failures"].items()] + [""]
    lines += _candidates(found)
    lines += ["Targets:", "", "| target | needed | measured | |", "|---|---|---|---|"]
    for target in found["targets"]:
        lines.append(f"| {target['name']} | {target['target']} | {target['measured']} | "
                     f"{'met' if target['met'] else '**MISSED**'} |")
    compression = "; ".join(f"{k}: {v}" for k, v in found.get("compression", {}).items() if v)
    if compression:
        lines += ["", f"Compression: {compression}."]
    lines += recovery_table(found.get("recovery") or {}, rows.get("eager", {}).get("map50_95"))
    lines += ["", "What limits it:", ""] + [f"- {note}" for note in limits(found)] + [""]
    return lines


def method(found: dict, settings: dict) -> list[str]:
    height, width = found["input_size"]
    plan, frame = found["plan"], found.get("frame_size") or ["?", "?"]
    return [
        (f"The demo detector (`edgevision demo`'s) at its deployment size, {height}×{width} letterboxed, batch "
         f"{settings['batch_size']}, {settings['threads']} engine threads, trained on the generated digits-on-photos "
         "COCO splits (train fits, val chooses epochs and checks parity, test is only measured)."),
        "",
        (f"- **Latency:** every row in a worker process of its own, {settings['rounds']} paired rounds, "
         f"{settings['iterations']} calls per block. *Inference*: `runtime.infer` on one input. *End to end*: a "
         f"decoded {frame[0]}×{frame[1]} test frame → letterbox preprocessing → inference → decode + NMS at the "
         f"deployment thresholds, cycling through {found.get('end_to_end_images', '?')} frames. Each row is paired with the one-liner in every round, inference "
         "and end to end separately."),
        ("- **post ms:** decode + NMS alone at the deployment thresholds, median per image over the test pass "
         "that measures mAP."),
        (f"- **the one-liner:** `nncf.quantize(ov.convert_model(model.onnx), nncf.Dataset(images))` with NNCF's "
         f"defaults (no ignored scope, default preset: the head is quantised too), {found['calibration_images']} "
         "letterboxed images from the train split."),
        (f"- **INT8 head in float:** `edgevision.compress.quantize(model, out, format=..., calibration="
         f"CalibrationConfig(data=<train split>, max_images={found['calibration_images']}), head=\"float\")`: "
         "the prediction layers and the decoding kept in float, found from the converted graph."),
        (f"- **edgevision full:** `prune` to {plan['target_macs_ratio']:.0%} of the MACs (head prediction layers "
         f"kept, channels in multiples of {plan.get('prune_round_to', 8)}) → `distill` from the original for {plan['distill_epochs']} epochs (FPN feature imitation + head "
         "outputs) → INT8 head-float on OpenVINO, ONNX Runtime and TFLite; the row shown is the one with the highest "
         "paired end-to-end × one-liner among those with a measured mAP."),
        (f"- **Parity:** every bundle against its torch model on {found['parity_images']} validation images (mAP50 "
         f"of the bundle's detections with the torch model's as ground truth): FP32 ≥ "
         f"{found.get('fp32_parity_map50', '?')}; INT8 ≥ "
         f"{found['int8_bench_map50']:g} here, a check that the graph is intact, so a lossy INT8 bundle is "
         "measured and its loss shows in the mAP columns instead of as a missing row."),
    ]


def _row(label: str, key: str, row: dict, fp32: float | None, ratios: dict) -> str:
    found = row.get("map50_95")
    delta = "—" if found is None or fp32 is None else f"{(found - fp32) * 100:+.2f}"
    e2e = row.get("end_to_end", {}).get("p50_ms")
    same = key == REFERENCE
    return (f"| {label} | {row['runtime']} ({row['engine_precision']}) | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | "
            f"{_f(row.get('post_p50_ms'))} | {_f(e2e)} | {row['size_mb']:.2f} | {_gmacs(row.get('macs'))} | "
            f"{_f(found)} | {_f(row.get('map50'))} | {delta} | "
            f"{'1.00×' if same else _ratio(ratios, REFERENCE + E2E, key + E2E)} | "
            f"{'1.00×' if same else _ratio(ratios, REFERENCE, key)} |")


def recovery_table(recovery: dict, fp32: float | None) -> list[str]:
    """Distillation against plain fine-tuning from the same pruned detector on the same budget (torch FP32 mAP)."""
    if not recovery.get("distill"):
        return []
    lines = ["", "Recovery after pruning, the same epochs, batch and schedule (PyTorch FP32; val chose each epoch):", "",
             "| pruned detector | best epoch | val mAP50-95 | test mAP50-95 | test mAP50 | Δ test mAP50-95 vs FP32 pt |",
             "|---|---|---|---|---|---|"]
    for key, label in (("pruned", "after pruning, before recovery"), ("fine-tune", "fine-tuned on labels"),
                       ("distill", "**distilled from the original**")):
        found = recovery.get(key)
        if not found:
            continue
        delta = "—" if fp32 is None else f"{(found['test_map50_95'] - fp32) * 100:+.2f}"
        lines.append(f"| {label} | {found.get('best_epoch', '—')} | {found['val_map50_95']:.3f} | "
                     f"{found['test_map50_95']:.3f} | {found['test_map50']:.3f} | {delta} |")
    return lines


def _candidates(found: dict) -> list[str]:
    rows, best, labels = found["rows"], found["best_engine"], found["labels"]
    candidates = [k for k in found["full_candidates"] if k in rows]
    if not candidates:
        return []
    lines = ["Choosing the engine for the full pipeline (same pruned + distilled weights, INT8 head-float each):", "",
             "| candidate | inference p50 ms | end to end p50 ms | mAP50-95 | × one-liner e2e | chosen |",
             "|---|---|---|---|---|---|"]
    for key in candidates:
        row = rows[key]
        lines.append(f"| {labels[key]} | {row['p50_ms']:.3f} | {_f(row.get('end_to_end', {}).get('p50_ms'))} | "
                     f"{_f(row.get('map50_95'))} | {_ratio(found['ratios'], REFERENCE + E2E, key + E2E)} | "
                     f"{'**yes**' if key == best else ''} |")
    return lines + [""]


def limits(found: dict) -> list[str]:
    """Plain observations from the rows: where the end-to-end time goes and what bounds each target."""
    rows, ratios, macs, best = found["rows"], found["ratios"], found["macs"], found["best_engine"]
    notes = []
    reference = rows.get(REFERENCE)
    if reference and reference.get("end_to_end"):
        e2e, inference = reference["end_to_end"]["p50_ms"], reference["p50_ms"]
        fixed = max(e2e - inference, 0.0)
        notes.append(
            f"The one-liner spends {inference:.2f} of its {e2e:.2f} ms end to end in inference; the other "
            f"{fixed:.2f} ms (letterbox preprocessing, decode + NMS, the call) do not shrink with the model, so "
            "no compression of the network alone can make the whole frame more than "
            f"{e2e / fixed:.1f}× faster than the one-liner." if fixed > 0 else
            f"The one-liner's end-to-end p50 is {e2e:.2f} ms, its inference p50 {inference:.2f} ms.")
    if best and macs.get("compressed") and macs.get("original"):
        gain = ratios.get(f"{REFERENCE}/{best}")
        cut = macs["original"] / macs["compressed"]
        text = (f"Pruning cut MACs {cut:.2f}× ({macs['original'] / 1e9:.3f} → {macs['compressed'] / 1e9:.3f} GMACs)")
        if gain:
            text += (f"; inference alone is {gain['median']:.2f}× the one-liner's speed (min–max "
                     f"{gain['min']:.2f}–{gain['max']:.2f}), which includes the float head edgevision keeps and the "
                     "one-liner quantises")
        notes.append(text + ".")
    fp32, oneliner = rows.get("eager", {}).get("map50_95"), (reference or {}).get("map50_95")
    if fp32 is not None and oneliner is not None:
        notes.append(f"The one-liner (head quantised) loses {(fp32 - oneliner) * 100:.2f} pt mAP50-95 vs FP32: "
                     "what keeping the head in float is for.")
    missed = [t for t in found["targets"] if not t["met"]]
    if missed:
        notes.append("Missed here: " + "; ".join(f"{t['name']} ({t['measured']}, needed {t['target']})"
                                                 for t in missed)
                     + ". These are the figures this configuration measured; nothing was tuned on the test split.")
    images = found.get("accuracy_images")
    if images:
        notes.append(f"mAP is measured once per row on the same {images} test images (no repeats, so no spread "
                     "is given for it).")
    return notes


def detection_provenance(found: dict | None) -> list[str]:
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
