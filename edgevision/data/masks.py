"""A semantic-segmentation split on disk: images/ + masks/ + labels.txt, validated once when opened.

The layout PASCAL VOC and most labelling tools export, reduced to what a device needs (numpy/OpenCV
only, no torch): `images/NAME.{png,jpg,...}` and `masks/NAME.png` with the same stem, the mask a
single-channel uint8 image of class ids (`ignore_index`, 255 by default, marks unlabelled pixels that
score nothing), and `labels.txt` one class name per line (line k is class id k; the first is usually
"background"). edgevision's generated digits data writes exactly this beside its COCO boxes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..errors import DataError

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

IMAGES, MASKS, LABELS_FILE = "images", "masks", "labels.txt"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
IGNORE_INDEX = 255


@dataclass(frozen=True)
class MaskFolder:
    """A validated split: image/mask path pairs in name order and the class names."""

    root: Path
    labels: tuple[str, ...]
    images: tuple[Path, ...]
    masks: tuple[Path, ...]
    ignore_index: int = IGNORE_INDEX

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, labels: Sequence[str] | None = None, ignore_index: int = IGNORE_INDEX
    ) -> MaskFolder:
        """Check the layout and pair every image with its mask; one DataError names the first problem and the fix.

        `labels` (a model's): labels.txt must list exactly these, in this order, or the masks' ids mean other classes.
        """
        root = Path(path)
        if not root.is_dir():
            raise DataError(f"Segmentation split {root} does not exist. Point at a folder holding images/, masks/ and labels.txt.")
        labels_path = root / LABELS_FILE
        if not labels_path.is_file():
            raise DataError(f"{root} has no {LABELS_FILE}. Write one class name per line (line k is mask value k).")
        names = tuple(line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip())
        if len(names) < 2 or len(set(names)) != len(names):
            raise DataError(f"{labels_path} must list at least two distinct class names, one per line; got {list(names)}.")
        if len(names) > ignore_index:
            raise DataError(f"{labels_path} lists {len(names)} classes; masks are uint8 with {ignore_index} = unlabelled.")
        if labels is not None and list(names) != list(labels):
            what = "in a different order than" if sorted(names) == sorted(labels) else "other classes than"
            raise DataError(
                f"{labels_path} lists {list(names)}: {what} the model's labels {list(labels)}, so its mask ids "
                "mean other classes. Use the model's own data set (same classes, same order), or fix labels.txt."
            )
        for folder in (IMAGES, MASKS):
            if not (root / folder).is_dir():
                raise DataError(f"{root} has no {folder}/ folder. A segmentation split holds images/, masks/ and {LABELS_FILE}.")
        images = sorted(p for p in (root / IMAGES).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DataError(f"{root / IMAGES} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        masks = []
        for image in images:
            mask = root / MASKS / f"{image.stem}.png"
            if not mask.is_file():
                raise DataError(f"Image {image.name} has no mask {mask}. Every image needs masks/<same name>.png.")
            masks.append(mask)
        return cls(root=root, labels=names, images=tuple(images), masks=tuple(masks), ignore_index=ignore_index)

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> np.ndarray:
        """The index-th image as BGR uint8 (OpenCV's order)."""
        image = cv2.imread(str(self.images[index]), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"Cannot decode image {self.images[index]}. Restore or replace it.")
        return image

    def mask(self, index: int) -> np.ndarray:
        """The index-th mask, H×W uint8 class ids, checked against the image size and the labels."""
        path = self.masks[index]
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise DataError(f"Cannot decode mask {path}. Restore or replace it.")
        if mask.ndim != 2 or mask.dtype != np.uint8:
            raise DataError(
                f"Mask {path} is {mask.dtype} with shape {mask.shape}; a mask is one channel of uint8 class ids "
                "(save it as an 8-bit grayscale or palette PNG, not RGB colours)."
            )
        labelled = mask[mask != self.ignore_index]
        if labelled.size and int(labelled.max()) >= len(self.labels):
            raise DataError(
                f"Mask {path} holds class id {int(labelled.max())} but {LABELS_FILE} lists {len(self.labels)} classes "
                f"(0..{len(self.labels) - 1}; {self.ignore_index} = unlabelled). Add the missing names."
            )
        return mask

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) with matching sizes."""
        image, mask = self.image(index), self.mask(index)
        if image.shape[:2] != mask.shape:
            raise DataError(f"Mask {self.masks[index]} is {mask.shape[1]}×{mask.shape[0]} but its image is "
                            f"{image.shape[1]}×{image.shape[0]}; masks must match their images pixel for pixel.")
        return image, mask

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for index in range(len(self)):
            yield self.pair(index)

    def batches(self, batch_size: int) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
        """Images and masks in lists of `batch_size` (the last may be shorter)."""
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}.")
        for start in range(0, len(self), batch_size):
            pairs = [self.pair(i) for i in range(start, min(start + batch_size, len(self)))]
            yield [p[0] for p in pairs], [p[1] for p in pairs]

    def subset(self, count: int, *, seed: int | None = None) -> MaskFolder:
        """The first `count` pairs (seed given: a seeded random sample of them, kept in name order)."""
        if count < 1:
            raise DataError(f"subset count must be at least 1, got {count}.")
        picked = list(range(len(self)))
        if seed is not None:
            picked = sorted(random.Random(seed).sample(picked, min(count, len(picked))))
        picked = picked[:count]
        return MaskFolder(self.root, self.labels, tuple(self.images[i] for i in picked),
                          tuple(self.masks[i] for i in picked), self.ignore_index)
