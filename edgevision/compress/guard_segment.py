"""The accuracy guard for segmenters: mIoU of the bundle through its engine vs the source model.

Both sides see the same letterboxed images and the same device post-processing (argmax, upsample,
letterbox inverse: `edgevision.tasks.segment`), and both are scored against the annotated masks on the
original frames; the bundle's masks come from `runtime.segment` on the raw images, so the manifest's
preprocessing is exercised too.
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


def measure_segmentation_miou(
    bundle: Bundle,
    reference: ReferenceOutputs,
    *,
    validation: Path,
    max_accuracy_drop: float,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
):
    """An AccuracyReport with metric mIoU (pixel accuracy beside it) for `bundle` and its source on `validation`."""
    from ..data.masks import MaskFolder
    from ..metrics.segmentation import ConfusionMatrix
    from ..runtimes import load_runtime
    from ..tasks.detect import letterboxes_for
    from ..tasks.segment import postprocess_masks, require_segmentation
    from .guard import AccuracyReport

    manifest = bundle.manifest
    spec = require_segmentation(manifest)
    folder = MaskFolder.open(validation, labels=manifest.labels or None, ignore_index=spec.ignore_index)
    nchw = manifest.input.with_layout(Layout.NCHW)
    source, exported = (ConfusionMatrix(manifest.num_classes, ignore_index=spec.ignore_index) for _ in range(2))
    with load_runtime(bundle, runtime, options=options) as engine:
        for images, masks in folder.batches(EVAL_BATCH):
            raw = reference(preprocess_batch(images, manifest.preprocess, nchw))
            source_masks = postprocess_masks(raw, manifest, letterboxes_for(images, manifest.preprocess))
            for truth, ours, theirs in zip(masks, engine.segment(images), source_masks, strict=True):
                exported.update(ours.class_ids, truth)
                source.update(theirs.class_ids, truth)
        engine_name = f"{engine.name} ({engine.engine_precision})"
    original, compressed = source.metrics(), exported.metrics()
    return AccuracyReport(
        original=original.miou, compressed=compressed.miou, images=len(folder), max_drop=max_accuracy_drop,
        engine=engine_name, data=str(validation), metric="mIoU",
        secondary=("pixel accuracy", original.pixel_accuracy, compressed.pixel_accuracy),
    )


__all__ = ["EVAL_BATCH", "measure_segmentation_miou"]
