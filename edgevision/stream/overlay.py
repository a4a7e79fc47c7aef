"""Readable text and boxes on video frames: white on a dark box, scaled to the frame size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._optional import opencv

if TYPE_CHECKING:
    from ..tasks.detect import Detections

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

#: One BGR colour per class id (cycled): distinct, and readable under white text.
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203))


def draw_caption(image: np.ndarray, text: str, *, row: int = 0, right: bool = False) -> None:
    """Draw `text` in a box at the top-left (or top-right) corner, `row` lines down, in place."""
    scale = max(0.4, image.shape[0] / 720.0)
    thickness = max(1, round(scale * 2))
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(6 * scale))
    line = height + baseline + 2 * pad
    x = image.shape[1] - width - 2 * pad if right else 0
    y = row * line
    cv2.rectangle(image, (x, y), (x + width + 2 * pad, y + line), (0, 0, 0), thickness=-1)
    cv2.putText(image, text, (x + pad, y + pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                thickness, cv2.LINE_AA)


def draw_detections(image: np.ndarray, detections: Detections) -> None:
    """Draw each box with "label score" above it (inside, at the top edge), coloured by class, in place.

    Boxes are in the image's own pixels (what `Detections` holds); the worst score is drawn first so the
    best box and its label end on top.
    """
    scale = max(0.35, image.shape[0] / 1080.0)
    thickness = max(1, round(scale * 3))
    pad = max(1, round(3 * scale))
    for i in reversed(range(len(detections))):
        x1, y1, x2, y2 = (round(v) for v in detections.boxes[i].tolist())
        colour = PALETTE[int(detections.class_ids[i]) % len(PALETTE)]
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        text = f"{detections.label_names[i]} {float(detections.scores[i]):.2f}"
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness - 1))
        top = y1 - height - baseline - 2 * pad
        if top < 0:  # no room above: label inside the box
            top = y1
        cv2.rectangle(image, (x1, top), (x1 + width + 2 * pad, top + height + baseline + 2 * pad), colour, -1)
        cv2.putText(image, text, (x1 + pad, top + pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    max(1, thickness - 1), cv2.LINE_AA)
