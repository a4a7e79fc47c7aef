"""Briefly trained detectors as test stand-ins: their scores cluster below the deployment threshold (0.25), and
parity refuses a source that finds no box (not established). `showing_best_boxes` lowers the threshold to just under
the weakest of a split's per-image best detections (decoded as the device decodes them: a box wholly inside the
letterbox padding is dropped, and a barely trained detector puts some of its best scores there), so the images show
their few best boxes and parity compares those."""

from __future__ import annotations

from pathlib import Path

from edgevision.model import TrainedModel


def showing_best_boxes(model: TrainedModel, split: Path) -> TrainedModel:
    from dataclasses import replace

    from edgevision.bundle import InputSpec
    from edgevision.data.coco import CocoDetections
    from edgevision.preprocess import letterbox_geometry, preprocess_batch
    from edgevision.tasks.detect import decode_detections

    dataset = CocoDetections.open(split, labels=model.labels)
    images = [dataset.image(i) for i in range(len(dataset))]
    batch = preprocess_batch(images, model.preprocess, InputSpec(name="input", shape=(1, 3, *model.input_size)))
    raw = model.reference_outputs(batch)
    best = []
    for image, outputs in zip(images, raw, strict=True):
        letterbox = letterbox_geometry(image.shape[0], image.shape[1], model.preprocess)
        found = decode_detections(outputs, model.detection, letterbox, tuple(model.input_size), tuple(model.labels),
                                  score_threshold=1e-6)
        if len(found.scores):
            best.append(float(found.scores.max()))
    if not best:
        raise AssertionError(f"the stand-in detector decodes no box at all on {split}")
    return replace(model, detection=model.detection.model_copy(update={"score_threshold": 0.98 * min(best)}))
