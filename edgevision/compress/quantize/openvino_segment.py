"""NNCF accuracy control for segmenters: the validation function is mIoU on a mask split.

NNCF calls `validation_fn(compiled_model, items)` for the float and the quantised model and ranks layers
by how much each per-item score changes, so besides the split's mIoU (the budget's unit, one confusion
matrix over every pixel) it gets one score per image: that image's pixel accuracy against its mask,
cheap and sensitive to a layer whose quantisation moves boundaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...preprocess import letterbox_geometry, preprocess_image


def segmentation_validation(nncf: Any, source: Any, validation: Path) -> tuple[Any, Any]:
    """(nncf.Dataset over the validation split, validation_fn returning (mIoU, per-image pixel accuracy))."""
    from ...data.masks import MaskFolder
    from ...metrics.segmentation import ConfusionMatrix
    from ...tasks.segment import decode_mask

    spec = source.segmentation
    folder = MaskFolder.open(validation, labels=source.labels, ignore_index=spec.ignore_index)
    size, labels = tuple(source.preprocess.size), tuple(source.labels)
    items = []
    for image, mask in folder:
        batch = preprocess_image(image, source.preprocess).transpose(2, 0, 1)[None].astype(np.float32)
        items.append((np.ascontiguousarray(batch), letterbox_geometry(*image.shape[:2], source.preprocess), mask))

    def validate(compiled_model: Any, validation_items: Any) -> tuple[float, list[float]]:
        output = compiled_model.outputs[0]
        matrix, per_image = ConfusionMatrix(len(labels), ignore_index=spec.ignore_index), []
        for batch, letterbox, truth in validation_items:
            predicted = decode_mask(compiled_model(batch)[output][0], spec, letterbox, size, labels).class_ids
            matrix.update(predicted, truth)
            labelled = truth != spec.ignore_index
            per_image.append(float((predicted[labelled] == truth[labelled]).mean()) if labelled.any() else 1.0)
        return matrix.metrics().miou, per_image

    return nncf.Dataset(items, lambda item: item[0]), validate


__all__ = ["segmentation_validation"]
