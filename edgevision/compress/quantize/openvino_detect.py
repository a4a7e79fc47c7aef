"""NNCF accuracy control for detectors: the validation function is COCO mAP50-95 on a COCO split.

NNCF calls `validation_fn(compiled_model, items)` for the float and the quantised model and ranks
layers by how much each per-item score changes, so besides the data-set mAP (the budget's unit) it
gets one score per image: the recall at IoU 0.5 of the ground truth by the detections a user would
see (the deployment score threshold). Cheap (numpy), and it moves when a layer's quantisation
shifts or loses boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...preprocess import letterbox_geometry, preprocess_image

#: IoU at which a ground-truth box counts as found for the per-image score.
RECALL_IOU = 0.5


def detection_validation(nncf: Any, source: Any, validation: Path) -> tuple[Any, Any]:
    """(nncf.Dataset over the validation split, validation_fn returning (mAP50-95, per-image recall))."""
    from ...data.coco import CocoDetections
    from ...metrics.detection import EVAL_SCORE_THRESHOLD, coco_map
    from ...tasks.detect import decode_detections

    dataset = CocoDetections.open(validation, labels=source.labels)
    spec, size, labels = source.detection, tuple(source.preprocess.size), tuple(source.labels)
    items = []
    for image, target in dataset:
        batch = preprocess_image(image, source.preprocess).transpose(2, 0, 1)[None].astype(np.float32)
        items.append((np.ascontiguousarray(batch), letterbox_geometry(*image.shape[:2], source.preprocess), target))

    def validate(compiled_model: Any, validation_items: Any) -> tuple[float, list[float]]:
        output = compiled_model.outputs[0]
        scored, per_image = [], []
        for batch, letterbox, target in validation_items:
            raw = compiled_model(batch)[output][0]
            scored.append(decode_detections(raw, spec, letterbox, size, labels, score_threshold=EVAL_SCORE_THRESHOLD))
            shown = decode_detections(raw, spec, letterbox, size, labels)
            per_image.append(_recall(shown, target))
        return float(coco_map(dataset, scored).map50_95), per_image

    return nncf.Dataset(items, lambda item: item[0]), validate


def _recall(detections: Any, target: Any) -> float:
    """Fraction of `target`'s boxes matched (same class, IoU ≥ RECALL_IOU) by some detection; 1 for an empty image."""
    truth = np.asarray(target.boxes_xyxy, np.float32).reshape(-1, 4)
    if len(truth) == 0:
        return 1.0 if len(detections.boxes) == 0 else 0.0
    if len(detections.boxes) == 0:
        return 0.0
    boxes = np.asarray(detections.boxes, np.float32)
    top_left = np.maximum(truth[:, None, :2], boxes[None, :, :2])
    bottom_right = np.minimum(truth[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    iou = inter / np.maximum(area(truth)[:, None] + area(boxes)[None, :] - inter, 1e-9)
    same = np.asarray(target.class_ids)[:, None] == np.asarray(detections.class_ids)[None, :]
    return float(np.mean(((iou >= RECALL_IOU) & same).any(axis=1)))


__all__ = ["RECALL_IOU", "detection_validation"]
