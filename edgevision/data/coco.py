"""A COCO detection split on disk, validated once when opened (numpy/OpenCV only: no torch).

Any COCO box file works, not only edgevision's generated one. Images are looked up in `images_dir`
when given, else in `<annotation dir>/images/` when that folder exists (edgevision's layout), else next
to the annotation file (Roboflow-style exports). Class index k is the k-th category by sorted id, so
edgevision's own files (category_id = k + 1) map straight back. Crowd annotations (iscrowd=1) are
ignore regions in COCO evaluation: they stay in the file for the evaluator but are not targets.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..errors import DataError

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

ANNOTATIONS = "annotations.json"
_SLACK = 1.0  # pixels a box may stick out of its image (rounding in other tools' exports)


@dataclass(frozen=True, eq=False)  # numpy fields: compare by identity
class DetectionTarget:
    """One image's ground truth: boxes in the original image's pixels, class indices 0-based."""

    image_id: int
    file_name: str
    width: int
    height: int
    boxes_xyxy: np.ndarray  # float32 K×4: left, top, right, bottom
    class_ids: np.ndarray  # int64 K

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        classes = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        if len(boxes) != len(classes):
            raise DataError(f"Image {self.file_name}: {len(boxes)} boxes but {len(classes)} class ids; pass one each.")
        object.__setattr__(self, "boxes_xyxy", boxes)
        object.__setattr__(self, "class_ids", classes)


@dataclass(frozen=True, eq=False)
class CocoDetections:
    """A validated COCO detection split: images in file order, each with its DetectionTarget."""

    annotation_path: Path
    images_dir: Path
    labels: tuple[str, ...]
    category_ids: tuple[int, ...]  # category_ids[k] is class k's COCO id
    targets: tuple[DetectionTarget, ...]
    _coco: dict = field(repr=False, compare=False)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        labels: Sequence[str] | None = None,
        images_dir: str | os.PathLike[str] | None = None,
        check_images: bool = True,
    ) -> CocoDetections:
        """Load and validate a split dir (holding annotations.json) or a COCO .json file.

        Every problem is one DataError naming the file, the first offending entry and the fix.
        `check_images` decodes every image to check its size against the JSON (a few ms each).
        """
        annotation_path = _annotation_file(Path(path))
        coco = _load_json(annotation_path)
        images_root = _images_dir(annotation_path, images_dir)
        categories = _categories(coco["categories"], annotation_path, labels)
        category_ids = tuple(cid for cid, _ in categories)
        images = _images(coco["images"], annotation_path, images_root, check_images=check_images)
        boxes: dict[int, list[list[float]]] = {image_id: [] for image_id in images}
        classes: dict[int, list[int]] = {image_id: [] for image_id in images}
        index_of = {cid: k for k, cid in enumerate(category_ids)}
        for number, entry in enumerate(coco["annotations"]):
            image_id, category, box = _annotation(entry, number, annotation_path, images, index_of)
            if entry.get("iscrowd", 0):
                continue
            boxes[image_id].append(box)
            classes[image_id].append(category)
        targets = tuple(
            DetectionTarget(
                image_id=image_id, file_name=image["file_name"], width=image["width"], height=image["height"],
                boxes_xyxy=np.asarray(boxes[image_id], np.float32).reshape(-1, 4),
                class_ids=np.asarray(classes[image_id], np.int64),
            )
            for image_id, image in images.items()
        )
        if not targets:
            raise DataError(f"{annotation_path} lists no images. Point at a split whose 'images' list is filled.")
        return cls(annotation_path=annotation_path, images_dir=images_root, labels=tuple(n for _, n in categories),
                   category_ids=category_ids, targets=targets, _coco=coco)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def image_ids(self) -> tuple[int, ...]:
        """The COCO image ids in this (sub)set's order: what an evaluator restricts itself to."""
        return tuple(t.image_id for t in self.targets)

    def image_path(self, index: int) -> Path:
        return self.images_dir / self.targets[index].file_name

    def image(self, index: int) -> np.ndarray:
        """The index-th image as BGR uint8 (OpenCV's order)."""
        path = self.image_path(index)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"Cannot decode image {path} (listed in {self.annotation_path}). Restore or replace it.")
        return image

    def __iter__(self) -> Iterator[tuple[np.ndarray, DetectionTarget]]:
        for index, target in enumerate(self.targets):
            yield self.image(index), target

    def batches(self, batch_size: int) -> Iterator[tuple[list[np.ndarray], list[DetectionTarget]]]:
        """Images and targets in lists of `batch_size` (the last may be shorter)."""
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}.")
        for start in range(0, len(self.targets), batch_size):
            stop = min(start + batch_size, len(self.targets))
            yield [self.image(i) for i in range(start, stop)], list(self.targets[start:stop])

    def subset(self, count: int, *, seed: int | None = None) -> CocoDetections:
        """The first `count` images, or a seeded random `count` of them (kept in file order)."""
        if count < 1:
            raise DataError(f"A subset needs at least 1 image, got {count}.")
        if count >= len(self.targets):
            return self
        if seed is None:
            chosen = range(count)
        else:
            chosen = sorted(random.Random(seed).sample(range(len(self.targets)), count))
        return CocoDetections(annotation_path=self.annotation_path, images_dir=self.images_dir, labels=self.labels,
                              category_ids=self.category_ids, targets=tuple(self.targets[i] for i in chosen),
                              _coco=self._coco)

    def coco_dict(self) -> dict:
        """The COCO dict of just these images (e.g. for pycocotools' COCO() on a subset)."""
        keep = set(self.image_ids)
        return {
            **{k: v for k, v in self._coco.items() if k not in ("images", "annotations")},
            "images": [image for image in self._coco["images"] if image["id"] in keep],
            "annotations": [a for a in self._coco["annotations"] if a["image_id"] in keep],
        }


def _annotation_file(path: Path) -> Path:
    if path.is_dir():
        path = path / ANNOTATIONS
    if not path.is_file():
        raise DataError(
            f"COCO annotation file {path} does not exist. Pass a split folder holding {ANNOTATIONS} or the .json itself."
        )
    return path


def _load_json(path: Path) -> dict:
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}). Pass a COCO annotation file.") from None
    if not isinstance(coco, dict):
        raise DataError(f"{path} holds a JSON {type(coco).__name__}, not a COCO object. Pass a COCO annotation file.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DataError(
                f"{path} has no '{key}' list: not a COCO detection file. COCO needs 'images', 'annotations' and "
                "'categories' lists."
            )
    return coco


def _images_dir(annotation_path: Path, images_dir: str | os.PathLike[str] | None) -> Path:
    if images_dir is not None:
        chosen = Path(images_dir)
        if not chosen.is_dir():
            raise DataError(f"Image folder {chosen} does not exist. Pass the folder the file names of "
                            f"{annotation_path} are relative to.")
        return chosen
    beside = annotation_path.parent / "images"
    return beside if beside.is_dir() else annotation_path.parent


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _categories(entries: list, path: Path, labels: Sequence[str] | None) -> list[tuple[int, str]]:
    found: dict[int, str] = {}
    for number, entry in enumerate(entries):
        if not (isinstance(entry, dict) and _is_int(entry.get("id")) and isinstance(entry.get("name"), str)):
            raise DataError(f"{path}: categories[{number}] = {entry!r} needs an integer 'id' and a string 'name'.")
        if entry["id"] in found:
            raise DataError(f"{path}: categories[{number}] repeats category id {entry['id']}. Give each category "
                            "its own id.")
        found[entry["id"]] = entry["name"]
    if not found:
        raise DataError(f"{path} has an empty 'categories' list. List one {{id, name}} per class.")
    categories = sorted(found.items())
    names = [name for _, name in categories]
    if labels is not None and list(labels) != names:
        raise DataError(
            f"{path}'s categories (by id) are {names}, but the labels given are {list(labels)}. Use the model trained "
            "on these categories, or pass labels in category-id order."
        )
    return categories


def _images(entries: list, path: Path, root: Path, *, check_images: bool) -> dict[int, dict]:
    images: dict[int, dict] = {}
    for number, entry in enumerate(entries):
        if not (isinstance(entry, dict) and _is_int(entry.get("id")) and isinstance(entry.get("file_name"), str)
                and _is_int(entry.get("width")) and _is_int(entry.get("height"))
                and entry["width"] > 0 and entry["height"] > 0):
            raise DataError(f"{path}: images[{number}] = {_short(entry)} needs an integer 'id', a 'file_name' and "
                            "positive integer 'width' and 'height'.")
        if entry["id"] in images:
            raise DataError(f"{path}: images[{number}] repeats image id {entry['id']}. Give each image its own id.")
        file = root / entry["file_name"]
        if not file.is_file():
            raise DataError(f"{path}: images[{number}] file {file} does not exist. Restore it, remove the entry, or "
                            "pass images_dir= to the folder its file names are relative to.")
        if check_images:
            image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise DataError(f"{path}: images[{number}] file {file} cannot be decoded. Replace it or remove the "
                                "entry.")
            height, width = image.shape[:2]
            if (width, height) != (entry["width"], entry["height"]):
                raise DataError(
                    f"{path}: images[{number}] ({entry['file_name']}) says {entry['width']}×{entry['height']} but "
                    f"the file is {width}×{height} (width×height). Fix the entry or restore the original image."
                )
        images[entry["id"]] = entry
    return images


def _annotation(entry: object, number: int, path: Path, images: dict[int, dict], index_of: dict[int, int]
                ) -> tuple[int, int, list[float]]:
    """(image id, class index, [x0, y0, x1, y1]) of one validated annotation."""
    where = f"{path}: annotations[{number}]"
    if not isinstance(entry, dict):
        raise DataError(f"{where} is {_short(entry)}, not an object with image_id, category_id and bbox.")
    image_id = entry.get("image_id")
    if not _is_int(image_id) or image_id not in images:
        raise DataError(f"{where} refers to image_id {image_id!r}, which is not in 'images'. Add the image or "
                        "remove the annotation.")
    category = entry.get("category_id")
    if not _is_int(category) or category not in index_of:
        raise DataError(f"{where} has category_id {category!r}, not among the categories {sorted(index_of)}. Add "
                        "the category or fix the id.")
    box = entry.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(_is_number(v) for v in box)):
        raise DataError(f"{where} has bbox {box!r}; COCO boxes are [x, y, width, height] in pixels.")
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        raise DataError(f"{where} has bbox {box} with a non-positive width or height. Fix or remove the box.")
    image = images[image_id]
    if x < -_SLACK or y < -_SLACK or x + w > image["width"] + _SLACK or y + h > image["height"] + _SLACK:
        raise DataError(
            f"{where} has bbox {box} (x, y, w, h) outside its image {image['file_name']} "
            f"({image['width']}×{image['height']}). Boxes are pixels of the original image: clip or fix it."
        )
    return image_id, index_of[category], [x, y, x + w, y + h]


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
