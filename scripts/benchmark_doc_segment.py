"""The segmentation part of docs/benchmarks.md, from the payload's "segmentation" entry
(scripts/benchmark_segment.py).

Every number, verdict and limit is computed from the payload; the prose only says how they were taken.
The tables are benchmark_doc_task's, shared with the detection section.
"""

from __future__ import annotations

from benchmark_doc_task import REFERENCE, TaskDoc, closing_notes, fixed_cost_notes, task_section

SEGMENTATION = TaskDoc(
    metric="miou", name="mIoU", short="mIoU", second="pixel_accuracy", second_name="pixel acc.", noun="segmenter",
    full="prune + KD + INT8", int8="INT8",
    main_rows=("eager", "ort_fp32", "ov_fp32", "oneliner", "int8_openvino", "int8_onnxruntime", "int8_tflite"),
)


def segmentation_section(found: dict | None, settings: dict) -> list[str]:
    """The segmentation table, the engine choice for the full pipeline, targets and what limits them."""
    return task_section(found, settings, SEGMENTATION, method=method, limits=limits)


def method(found: dict, settings: dict) -> list[str]:
    height, width = found["input_size"]
    plan, frame = found["plan"], found.get("frame_size") or ["?", "?"]
    return [
        (f"The demo segmenter (`edgevision demo`'s LR-ASPP) at its deployment size, {height}×{width} letterboxed, "
         f"batch {settings['batch_size']}, {settings['threads']} engine threads, trained on the masks of the generated "
         "digits-on-photos splits (background + 10 digit classes; train fits, val chooses epochs and checks parity, "
         "test is only measured)."),
        "",
        (f"- **mIoU:** every bundle on the test split through its own engine, on the original {frame[0]}×{frame[1]} "
         "frames: letterbox preprocessing → inference → argmax → letterbox inverse → nearest resize to the frame, "
         "scored against the annotated masks (mean IoU over the classes present, pixel accuracy beside it)."),
        (f"- **Latency:** every row in a worker process of its own, {settings['rounds']} paired rounds, "
         f"{settings['iterations']} calls per block. *Inference*: `runtime.infer` on one input. *End to end*: a "
         f"decoded {frame[0]}×{frame[1]} test frame → letterbox preprocessing → inference → argmax + letterbox "
         f"inverse + resize to the frame, cycling through {found.get('end_to_end_images', '?')} frames. Each row is "
         "paired with the one-liner in every round, inference and end to end separately."),
        ("- **post ms:** argmax + letterbox inverse + resize alone, median per image over the test pass that "
         "measures mIoU."),
        (f"- **the one-liner:** `nncf.quantize(ov.convert_model(model.onnx), nncf.Dataset(images))` with NNCF's "
         f"defaults (no ignored scope, default preset), {found['calibration_images']} letterboxed images from the "
         "train split."),
        (f"- **edgevision INT8:** `edgevision.compress.quantize(model, out, format=..., calibration="
         f"CalibrationConfig(data=<train split>, max_images={found['calibration_images']}))`: every layer "
         "quantised (a segmenter has no separate head to keep in float), per engine."),
        (f"- **edgevision full:** `prune` to {plan['target_macs_ratio']:.0%} of the MACs (the class-score layers "
         f"kept, channels in multiples of {plan['prune_round_to']}) → `distill` from the original for "
         f"{plan['distill_epochs']} epochs (pixel-wise KL ×{plan['distill_alpha']:g} + cross-entropy on the masks "
         f"×{1 - plan['distill_alpha']:g}, feature imitation ×{plan['distill_feature_weight']:g}) → edgevision INT8 "
         "on OpenVINO, ONNX Runtime and TFLite; the row shown is the one with the highest paired end-to-end "
         "× one-liner among those with a measured mIoU."),
        (f"- **Parity:** every bundle against its torch model on {found['parity_images']} validation images (mIoU "
         f"of the bundle's masks with the torch model's as ground truth, at the model input): FP32 ≥ "
         f"{found.get('fp32_parity_miou', '?')}; INT8 ≥ {found['int8_bench_miou']:g} here, a check that the graph "
         "is intact, so a lossy INT8 bundle is measured and its loss shows in the mIoU columns instead of as a "
         "missing row."),
    ]


def limits(found: dict) -> list[str]:
    """Plain observations from the rows: where the end-to-end time goes and what bounds each target."""
    notes = fixed_cost_notes(found, fixed="letterbox preprocessing, argmax + resize to the frame, the call",
                             kept_float="")
    rows = found["rows"]
    fp32 = rows.get("eager", {}).get("miou")
    for key, what in ((REFERENCE, "The one-liner"), ("int8_openvino", "edgevision INT8 on OpenVINO")):
        found_miou = rows.get(key, {}).get("miou")
        if fp32 is not None and found_miou is not None:
            notes.append(f"{what} loses {(fp32 - found_miou) * 100:.2f} pt mIoU vs FP32.")
    return notes + closing_notes(SEGMENTATION, found)
