"""A picture worth looking at: test images with the ground truth and the boxes (or masks) each engine found.

Rows are images, columns are "ground truth" then one per bundle; every box is drawn with its label
(and score for detections), so a wrong box, a missed digit or an engine that disagrees shows at a
glance. numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..data.coco import CocoDetections
from ..data.masks import MaskFolder
from ..tasks.detect import Detections
from ..tasks.segment import SegmentationMask

cv2 = opencv()

#: Ground truth in green, detections in orange (BGR); labels on a filled box so they read on any photo.
TRUTH_COLOUR = (60, 200, 60)
FOUND_COLOUR = (0, 140, 255)
_TITLE_HEIGHT = 22


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, names: Sequence[str], *, colour: tuple[int, int, int],
    scores: Sequence[float] | None = None,
) -> np.ndarray:
    """A copy of `image` (BGR) with each xyxy box outlined and captioned "label" or "label 0.93"."""
    canvas = image.copy()
    for index, (box, name) in enumerate(zip(np.asarray(boxes).reshape(-1, 4).tolist(), names, strict=True)):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        caption = name if scores is None else f"{name} {scores[index]:.2f}"
        (width, height), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(0, y1 - height - 4)
        cv2.rectangle(canvas, (x1, top), (x1 + width + 4, top + height + 4), colour, -1)
        cv2.putText(canvas, caption, (x1 + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def detection_gallery(
    dataset: CocoDetections, found: dict[str, Sequence[Detections]], path: Path, *, images: int = 4
) -> Path:
    """Write the grid for the first `images` of `dataset`; `found[name][i]` are the boxes bundle `name` found in image i."""
    rows = []
    for index in range(min(images, len(dataset))):
        image, target = dataset.image(index), dataset.targets[index]
        cells = [_titled(draw_boxes(image, target.boxes_xyxy, [dataset.labels[k] for k in target.class_ids],
                                    colour=TRUTH_COLOUR), "ground truth")]
        for name, per_image in found.items():
            detections = per_image[index]
            drawn = draw_boxes(image, detections.boxes, detections.label_names, colour=FOUND_COLOUR,
                               scores=detections.scores.tolist())
            cells.append(_titled(drawn, name))
        rows.append(np.hstack(_padded(cells)))
    return _write(np.vstack(_padded(rows, axis=1)), path)


def segmentation_gallery(
    dataset: MaskFolder, found: dict[str, Sequence[SegmentationMask]], path: Path, *, images: int = 4,
    background_class: int | None = 0,
) -> Path:
    """The same grid for masks: each cell tinted by class (the stream's overlay), ground truth first; the ground
    truth's unlabelled pixels (`ignore_index`) are drawn as background."""
    from ..stream.overlay import draw_segmentation

    def drawn(image: np.ndarray, mask: SegmentationMask) -> np.ndarray:
        canvas = image.copy()
        draw_segmentation(canvas, mask)
        return canvas

    rows = []
    for index in range(min(images, len(dataset))):
        image, truth = dataset.image(index), dataset.mask(index)
        if background_class is not None:
            truth = np.where(truth == dataset.ignore_index, background_class, truth)
        cells = [_titled(drawn(image, SegmentationMask(truth, dataset.labels, background_class)), "ground truth")]
        cells += [_titled(drawn(image, per_image[index]), name) for name, per_image in found.items()]
        rows.append(np.hstack(_padded(cells)))
    return _write(np.vstack(_padded(rows, axis=1)), path)


def _write(grid: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid):
        raise OSError(f"OpenCV could not write {path}")
    return path


def _titled(image: np.ndarray, title: str) -> np.ndarray:
    band = np.full((_TITLE_HEIGHT, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(band, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, image])


def _padded(images: list[np.ndarray], *, axis: int = 0) -> list[np.ndarray]:
    """Pad to a common height (axis 0, for hstack) or width (axis 1, for vstack), plus a 4 px white gutter."""
    size = max(image.shape[axis] for image in images)
    result = []
    for image in images:
        missing = size - image.shape[axis]
        pad = [(0, missing), (0, 4)] if axis == 0 else [(0, 4), (0, missing)]
        result.append(np.pad(image, [*pad, (0, 0)], constant_values=255))
    return result
