"""Readable text, boxes and masks on video frames: white on a dark box, scaled to the frame size.

Everything here draws in place on a BGR uint8 frame in the frame's own pixels, with OpenCV, vectorised:
an annotated video must not slow the stream it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from .._optional import opencv
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..tasks.detect import Detections
    from ..tasks.segment import SegmentationMask

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

#: One BGR colour per class id (cycled): distinct, and readable under white text.
PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
           (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
           (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203))


#: One BGR colour per mask class other than the background, in class order (cycled): Tableau 10 without its
#: grey, then the same hues lighter. Distinct side by side and still visible at half opacity on a dark or light scene.
MASK_PALETTE = ((180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
                (194, 119, 227), (34, 189, 188), (207, 190, 23), (232, 199, 174), (120, 187, 255), (138, 223, 152),
                (150, 152, 255), (213, 176, 197), (148, 156, 196), (210, 182, 247), (141, 219, 219), (229, 218, 158))

#: How much of a class's colour replaces the frame under its mask (0: invisible, 1: opaque).
MASK_OPACITY = 0.5

#: Classes listed in the mask legend, largest first; the rest are counted on one more line.
LEGEND_ROWS = 5


def draw_caption(image: np.ndarray, text: str, *, row: int = 0, right: bool = False,
                 swatch: tuple[int, int, int] | None = None) -> None:
    """Draw `text` in a box at the top-left (or top-right) corner, `row` lines down, in place.

    `swatch`: a BGR colour shown as a square before the text (a legend entry).
    """
    scale = max(0.4, image.shape[0] / 720.0)
    thickness = max(1, round(scale * 2))
    (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, round(6 * scale))
    line = height + baseline + 2 * pad
    indent = height + pad if swatch is not None else 0
    x = image.shape[1] - width - indent - 2 * pad if right else 0
    y = row * line
    cv2.rectangle(image, (x, y), (x + width + indent + 2 * pad, y + line), (0, 0, 0), thickness=-1)
    if swatch is not None:
        cv2.rectangle(image, (x + pad, y + pad), (x + pad + height, y + pad + height), swatch, thickness=-1)
    cv2.putText(image, text, (x + indent + pad, y + pad + height), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
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


def mask_colour(class_id: int, background_class: int | None) -> tuple[int, int, int] | None:
    """The BGR colour class `class_id` is drawn in; None for the background, which is never drawn.

    Colours follow the object classes in order (the background skipped), so the first object class is always
    the palette's first colour, whichever index the bundle gives the background.
    """
    if class_id == background_class:
        return None
    rank = class_id - 1 if background_class is not None and class_id > background_class else class_id
    return MASK_PALETTE[rank % len(MASK_PALETTE)]


@lru_cache(maxsize=16)
def _colour_table(classes: int, background_class: int | None) -> np.ndarray:
    """(max(classes, 256), 3) uint8: each class id's colour (black for the background), read-only."""
    table = np.zeros((max(classes, 256), 3), np.uint8)
    for class_id in range(classes):
        table[class_id] = mask_colour(class_id, background_class) or (0, 0, 0)
    table.setflags(write=False)
    return table


def draw_segmentation(image: np.ndarray, mask: SegmentationMask, *, area_fractions: Mapping[str, float] | None = None,
                      opacity: float = MASK_OPACITY) -> None:
    """Tint each object class's pixels with its colour (`mask_colour`) and list the classes present, in place.

    The background keeps the frame's own pixels. The legend (top-left, largest class first) shows each class's
    colour and share of the frame: `area_fractions`, when the caller has them, else the mask's own.
    Only the rectangle around the objects is blended, with 8-bit table look-ups: about a millisecond for a
    640×480 frame full of objects.
    """
    ids = mask.class_ids
    if image.shape[:2] != ids.shape:
        raise ConfigError(f"The mask is {ids.shape[1]}×{ids.shape[0]} but the image is {image.shape[1]}×{image.shape[0]}; "
                          "draw a mask on the frame it was decoded for.")
    if not 0.0 <= opacity <= 1.0:
        raise ConfigError(f"Mask opacity must be in [0, 1], got {opacity}.")
    background = mask.background_class
    table = _colour_table(len(mask.labels), background)
    if background is None:
        objects = np.full(ids.shape, 255, np.uint8)
    elif ids.dtype == np.uint8:
        objects = cv2.compare(ids, background, cv2.CMP_NE)
    else:
        objects = (ids != background).astype(np.uint8) * 255
    x, y, width, height = cv2.boundingRect(objects)
    if width and height:
        region, region_ids = image[y : y + height, x : x + width], ids[y : y + height, x : x + width]
        if region_ids.dtype == np.uint8:  # one 8-bit look-up per channel: several times faster than numpy indexing
            colours = cv2.merge([cv2.LUT(region_ids, np.ascontiguousarray(table[:256, c])) for c in range(3)])
        else:  # more than 256 classes
            colours = np.take(table, region_ids, axis=0)
        blended = cv2.addWeighted(region, 1.0 - opacity, colours, opacity, 0.0)
        cv2.copyTo(blended, objects[y : y + height, x : x + width], region)
    shares = mask.area_fractions() if area_fractions is None else area_fractions
    index = {label: class_id for class_id, label in enumerate(mask.labels)}
    entries = list(shares.items())
    for row, (label, share) in enumerate(entries[:LEGEND_ROWS]):
        swatch = mask_colour(index[label], background) if label in index else None
        draw_caption(image, f"{label} {share:.1%}", row=row, swatch=swatch)
    if len(entries) > LEGEND_ROWS:
        draw_caption(image, f"+{len(entries) - LEGEND_ROWS} more", row=LEGEND_ROWS)
