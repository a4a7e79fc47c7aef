"""The accuracy guard for detectors: COCO mAP50-95 of the bundle through its engine vs the source model.

Both sides see the same letterboxed images and the same device post-processing (`postprocess_batch`
at `EVAL_SCORE_THRESHOLD`, the setting mAP is measured at, as `bench` does); the bundle's detections
come from `runtime.detect` on the raw images, so the manifest's preprocessing is exercised too.
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import Bundle
from ..preprocess import preprocess_batch
from ..runtimes.base import RuntimeOptions
from ..source import ReferenceOutputs
from ..types import Layout

#: Images per batch when evaluating (bounds memory; the engine splits further if its batch is fixed).
EVAL_BATCH = 16


def measure_detection_map(
    bundle: Bundle,
    reference: ReferenceOutputs,
    *,
    validation: Path,
    max_accuracy_drop: float,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
):
    """An AccuracyReport with metric mAP50-95 (and mAP50 beside it) for `bundle` and its source on `validation`."""
    from ..data.coco import CocoDetections
    from ..metrics.detection import EVAL_SCORE_THRESHOLD, coco_map
    from ..runtimes import load_runtime
    from ..tasks.detect import letterboxes_for, postprocess_batch
    from .guard import AccuracyReport

    manifest = bundle.manifest
    dataset = CocoDetections.open(validation, labels=manifest.labels)
    nchw = manifest.input.with_layout(Layout.NCHW)
    source_detections, bundle_detections = [], []
    with load_runtime(bundle, runtime, options=options) as engine:
        for images, _targets in dataset.batches(EVAL_BATCH):
            raw = reference(preprocess_batch(images, manifest.preprocess, nchw))
            source_detections += postprocess_batch(
                raw, manifest, letterboxes_for(images, manifest.preprocess), score_threshold=EVAL_SCORE_THRESHOLD
            )
            bundle_detections += engine.detect(images, score_threshold=EVAL_SCORE_THRESHOLD)
        engine_name = f"{engine.name} ({engine.engine_precision})"
    original, compressed = coco_map(dataset, source_detections), coco_map(dataset, bundle_detections)
    return AccuracyReport(
        original=original.map50_95, compressed=compressed.map50_95, images=len(dataset), max_drop=max_accuracy_drop,
        engine=engine_name, data=str(validation), metric="mAP50-95",
        secondary=("mAP50", original.map50, compressed.map50),
    )


__all__ = ["EVAL_BATCH", "measure_detection_map"]
