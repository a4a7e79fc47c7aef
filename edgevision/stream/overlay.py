"""Readable text on video frames: white on a dark box, scaled to the frame size."""

from __future__ import annotations

import numpy as np

from .._optional import opencv

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither


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
