"""Detection parity: the export's detections against the source model's, on the validation images.

Both raw outputs go through the SAME device post-processing (`edgevision.tasks.detect`: decode,
NMS, letterbox back to image pixels, the bundle's deployment score threshold — for the export 90 %
of it, see CANDIDATE_THRESHOLD), so the check is about the boxes a user would see. Agreement is COCO mAP50 of the export's detections with the
source's detections as ground truth (`edgevision.metrics.detection.agreement_map50`); max and
mean |Δ| of the raw outputs are recorded beside it. Below the bar for the engine's precision
(`MIN_DETECTION_MAP50`) the bundle fails.

A source that finds no box in any input proves nothing (any export that finds none agrees "perfectly",
`agreement_map50` is 1.0): such a parity is not established (passed False, `source_detections` 0), and
the error says to check on images that show the model's objects.

The report's `top1_agreement` / `min_top1_agreement` carry the same agreement and bar as
`detection_map50` / `min_detection_map50`, so `passed` reads the same way for every task and a
reader that knows only classification reports still shows the number that decided.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bundle import Bundle, ParityReport
from ..errors import ParityError
from ..preprocess import Letterbox, letterbox_geometry, preprocess_batch
from ..source import ModelSource, ReferenceOutputs
from ..tasks.detect import Detections, postprocess_batch
from ..types import Layout, Precision, Task
from .parity import ParityConfig, ParityRule, engine_inputs

if TYPE_CHECKING:
    from ..data.coco import CocoDetections

#: Least agreement mAP50 (export vs source detections) per engine precision. INT8's bar is from
#: evidence: on the demo detector (val, 250 images, 300 calibration images) INT8 agreed at 0.936–0.950
#: on ONNX Runtime, OpenVINO and TFLite, head in float or not, and w8a16 at 0.936; the decisive check
#: for INT8 is the mAP guard (`compress.guard`), which separates head-float from plain where this does not.
MIN_DETECTION_MAP50 = {Precision.FP32: 0.99, Precision.FP16: 0.98, Precision.BF16: 0.98, Precision.INT8: 0.9}


#: The export is decoded at this fraction of the deployment score threshold, the source at the threshold
#: itself: a box the source shows at 0.251 and the export scores 0.249 is still found (an extra box
#: below every matched score cannot lower AP), while an export whose scores sag further loses its boxes.
CANDIDATE_THRESHOLD = 0.9
#: Validation images per engine call (bounds memory; the engine splits further if its batch is fixed).
PARITY_BATCH = 32


def detection_batches(bundle: Bundle, config: ParityConfig) -> tuple[str, Iterator[tuple[np.ndarray, list[Letterbox]]]]:
    """Where the samples come from, and batches of (NCHW float32 inputs, each image's letterbox).

    With `config.data` (a COCO split): up to `max_images` of its images, a seeded subset when there
    are more, read PARITY_BATCH at a time (a validation split of 640-pixel images is gigabytes as
    float32). Without: seeded random inputs of the model's size (boxes in input pixels).
    """
    manifest = bundle.manifest
    nchw = manifest.input.with_layout(Layout.NCHW)
    if config.data is None:
        height, width = nchw.height, nchw.width
        rng = np.random.default_rng(config.seed)
        inputs = rng.standard_normal((config.random_samples, 3, height, width), dtype=np.float32)
        box = letterbox_geometry(height, width, manifest.preprocess)
        return "random", iter([(inputs, [box] * config.random_samples)])
    dataset = _open_coco(Path(config.data), manifest.labels).subset(config.max_images, seed=config.seed)

    def batches() -> Iterator[tuple[np.ndarray, list[Letterbox]]]:
        for start in range(0, len(dataset), PARITY_BATCH):
            images = [dataset.image(i) for i in range(start, min(start + PARITY_BATCH, len(dataset)))]
            letterboxes = [letterbox_geometry(image.shape[0], image.shape[1], manifest.preprocess) for image in images]
            yield preprocess_batch(images, manifest.preprocess, nchw), letterboxes

    return str(config.data), batches()


def _detect_parity(
    source: ModelSource,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision,
    runtime: str | None,
    options: Any,
    reference: ReferenceOutputs,
) -> ParityReport:
    from ..metrics.detection import agreement_map50
    from ..runtimes import load_runtime

    manifest = bundle.manifest
    origin, batches = detection_batches(bundle, config)
    candidate_threshold = manifest.detection.score_threshold * CANDIDATE_THRESHOLD
    source_detections: list[Detections] = []
    export_detections: list[Detections] = []
    sizes: list[tuple[int, int]] = []
    max_diff = sum_diff = 0.0
    values = 0
    with load_runtime(bundle, runtime, options=options) as engine:
        for inputs, letterboxes in batches:
            expected = reference(inputs)
            candidate = engine.infer_outputs(engine_inputs(bundle, inputs))[manifest.detection.output]
            if candidate.shape != expected.shape:
                raise ParityError(
                    f"{engine.name} returned raw detections of shape {candidate.shape}, the source {expected.shape}: "
                    "the exported graph is not the source's. Re-export the bundle."
                )
            diff = np.abs(expected.astype(np.float64) - candidate.astype(np.float64))
            max_diff, sum_diff, values = max(max_diff, float(diff.max())), sum_diff + float(diff.sum()), values + diff.size
            source_detections += postprocess_batch(expected, manifest, letterboxes)
            export_detections += postprocess_batch(candidate, manifest, letterboxes, score_threshold=candidate_threshold)
            sizes += [box.source for box in letterboxes]
        engine_name, engine_precision = engine.name, engine.engine_precision
    agreement = float(agreement_map50(source_detections, export_detections, sizes))
    bar = config.min_detection_map50 if config.min_detection_map50 is not None else MIN_DETECTION_MAP50[precision]
    found = sum(len(d) for d in source_detections)
    unit = "images" if config.data is not None else "samples"
    return ParityReport(
        samples=len(sizes), max_abs_diff=max_diff, mean_abs_diff=sum_diff / values, top1_agreement=agreement,
        min_top1_agreement=bar, engine=engine_name, engine_precision=engine_precision,
        passed=bool(found > 0 and agreement >= bar), data=f"{origin} ({len(sizes)} {unit}, {found} source detections)",
        task=Task.DETECT, detection_map50=agreement, min_detection_map50=bar, source_detections=found,
    )


def _describe_detect_failure(report: ParityReport) -> str:
    if report.source_detections == 0:
        return (
            f"parity not established: the source model found no box above the bundle's score threshold in any of "
            f"the {report.samples} inputs ({report.data}), so an export that finds none agrees with it and proves "
            f"nothing ({report.engine}, {report.engine_precision}). Check parity on images that show the model's "
            "objects (ParityConfig(data=<a COCO split>)); an untrained detector finds nothing anywhere"
        )
    return (
        f"detection agreement mAP50 {report.detection_map50:.4f} (need ≥ {report.min_detection_map50:.4f}), "
        f"max |Δ raw output| {report.max_abs_diff:.3g} on {report.data} through {report.engine} "
        f"({report.engine_precision})"
    )


def _open_coco(data: Path, labels: Sequence[str]) -> CocoDetections:
    from ..data.coco import CocoDetections

    return CocoDetections.open(data, labels=list(labels))


DETECT_RULE = ParityRule(check=_detect_parity, open_data=_open_coco, describe_failure=_describe_detect_failure)

__all__ = ["CANDIDATE_THRESHOLD", "DETECT_RULE", "MIN_DETECTION_MAP50", "PARITY_BATCH", "detection_batches"]
