"""ImageFolder on disk (root/<label>/<image>), read with OpenCV only so it works on devices."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..errors import DataError

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


@dataclass(frozen=True)
class ImageFolder:
    """A labelled image folder: one sub-folder per class, sorted names give label indices.

    Files whose suffix is not an image are an error (listed by name), not silently skipped:
    a stray file usually means the wrong folder was passed. Hidden files are ignored.
    """

    root: Path
    labels: tuple[str, ...]
    samples: tuple[tuple[Path, int], ...]

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, labels: tuple[str, ...] | list[str] | None = None) -> ImageFolder:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"Data folder {root} does not exist. Pass a folder laid out as <root>/<label>/<image>.png.")
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(f"{root} has no class sub-folders. Lay images out as {root}/<label>/<image>.png.")
        found = tuple(p.name for p in class_dirs)
        if labels is not None:
            unknown = sorted(set(found) - set(labels))
            if unknown:
                raise DataError(f"{root} has folders {unknown} that are not among the model's labels {list(labels)}.")
            label_list = tuple(labels)
        else:
            label_list = found
        samples: list[tuple[Path, int]] = []
        not_images: list[str] = []
        for class_dir in class_dirs:
            index = label_list.index(class_dir.name)
            for file in sorted(class_dir.iterdir()):
                if file.name.startswith(".") or file.is_dir():
                    continue
                if file.suffix.lower() in IMAGE_SUFFIXES:
                    samples.append((file, index))
                else:
                    not_images.append(str(file.relative_to(root)))
        if not_images:
            shown = ", ".join(not_images[:3]) + (f" (+{len(not_images) - 3} more)" if len(not_images) > 3 else "")
            raise DataError(
                f"{root} holds {len(not_images)} non-image file(s): {shown}. Remove them or point at the image folder itself."
            )
        if not samples:
            raise DataError(f"{root} holds no images. Expected {root}/<label>/<image>.png.")
        return cls(root=root, labels=label_list, samples=tuple(samples))

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, count: int, *, seed: int = 0) -> ImageFolder:
        """A seeded random subset of at most `count` samples (e.g. for calibration)."""
        if count >= len(self.samples):
            return self
        chosen = random.Random(seed).sample(range(len(self.samples)), count)
        return ImageFolder(self.root, self.labels, tuple(self.samples[i] for i in sorted(chosen)))

    def read(self, index: int) -> tuple[np.ndarray, int]:
        """(BGR uint8 image, label index)."""
        path, label = self.samples[index]
        return read_image(path), label

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for index in range(len(self.samples)):
            yield self.read(index)

    def batches(self, batch_size: int) -> Iterator[tuple[list[np.ndarray], np.ndarray]]:
        """Raw images and labels in batches of `batch_size`."""
        images: list[np.ndarray] = []
        labels: list[int] = []
        for image, label in self:
            images.append(image)
            labels.append(label)
            if len(images) == batch_size:
                yield images, np.asarray(labels)
                images, labels = [], []
        if images:
            yield images, np.asarray(labels)


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to BGR uint8 (OpenCV's order), or raise DataError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"Cannot decode image {path}: the file is not an image or is corrupt. Remove or replace it.")
    return image
