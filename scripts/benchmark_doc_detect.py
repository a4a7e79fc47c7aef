"""The detection part of docs/benchmarks.md, from the payload's "detection" entry (scripts/benchmark_detect.py).

Every number, verdict and limit is computed from the payload; the prose only says how they were taken.
The tables are benchmark_doc_task's, shared with the segmentation section.
"""

from __future__ import annotations

from benchmark_doc_task import REFERENCE, TaskDoc, closing_notes, fixed_cost_notes, section_provenance, task_section

DETECTION = TaskDoc(
    metric="map50_95", name="mAP50-95", short="mAP", second="map50", second_name="mAP50", noun="detector",
    full="prune + KD + INT8 head-float", int8="INT8 head-float",
    main_rows=("eager", "ort_fp32", "ov_fp32", "oneliner", "hf_openvino", "hf_onnxruntime", "hf_tflite"),
)


def detection_section(found: dict | None, settings: dict) -> list[str]:
    """The detection table, the engine choice for the full pipeline, targets and what limits them."""
    return task_section(found, settings, DETECTION, method=method, limits=limits)


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


def limits(found: dict) -> list[str]:
    """Plain observations from the rows: where the end-to-end time goes and what bounds each target."""
    notes = fixed_cost_notes(found, fixed="letterbox preprocessing, decode + NMS, the call",
                             kept_float=", which includes the float head edgevision keeps and the one-liner quantises")
    rows = found["rows"]
    fp32, oneliner = rows.get("eager", {}).get("map50_95"), rows.get(REFERENCE, {}).get("map50_95")
    if fp32 is not None and oneliner is not None:
        notes.append(f"The one-liner (head quantised) loses {(fp32 - oneliner) * 100:.2f} pt mAP50-95 vs FP32: "
                     "what keeping the head in float is for.")
    return notes + closing_notes(DETECTION, found)


#: The section's model provenance line for the doc's header.
detection_provenance = section_provenance
