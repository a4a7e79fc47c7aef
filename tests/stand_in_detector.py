"""Briefly trained detectors as test stand-ins: their scores cluster below the deployment threshold (0.25), and
parity refuses a source that finds no box (not established). `showing_best_boxes` lowers the threshold to just under
the weakest of a split's per-image best scores, so every image shows its few best boxes and parity compares those."""

from __future__ import annotations

from pathlib import Path

from edgevision.model import TrainedModel


def showing_best_boxes(model: TrainedModel, split: Path) -> TrainedModel:
    from dataclasses import replace

    from edgevision.bundle import InputSpec
    from edgevision.data.coco import CocoDetections
    from edgevision.preprocess import preprocess_batch

    images = CocoDetections.open(split, labels=model.labels)
    batch = preprocess_batch([images.image(i) for i in range(len(images))], model.preprocess,
                             InputSpec(name="input", shape=(1, 3, *model.input_size)))
    best = model.reference_outputs(batch)[:, 4:, :].max(axis=(1, 2))  # each image's best class score
    return replace(model, detection=model.detection.model_copy(update={"score_threshold": float(0.98 * best.min())}))
