"""The task's accuracy metric through the engine, one measurement per task (registry keyed by Task).

Classify: top-1 on an image folder. Detect: COCO mAP50-95 and mAP50 (pycocotools) on a COCO
split, with the device's own post-processing timed apart from inference — on a Pi, decoding and
NMS over thousands of candidates is a real cost, so it gets its own column — and end to end
(preprocess + inference + post-processing) per image. Segment: mIoU (and pixel accuracy) on a mask
split, each mask in its image's own pixels as `Runtime.segment` returns it, with the post-processing
(argmax, upsampling, letterbox inverse) timed apart the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtimes.base import Runtime
from ..types import Task

#: tick(phase, amount): progress reported to the parent process.
Tick = Callable[[str, int], None] | None


@dataclass(frozen=True, kw_only=True)
class TaskMeasurement:
    """The headline metric (`name`, `value` in [0, 1]) plus the task's other figures."""

    name: str  # "top-1", "mAP50-95"
    value: float
    images: int
    extras: dict[str, float] = field(default_factory=dict)  # e.g. {"mAP50": 0.93}
    postprocess_ms: list[float] = field(default_factory=list)  # per image, deployment thresholds
    end_to_end_ms: list[float] = field(default_factory=list)  # per image: preprocess + inference + post-processing


def measure_task(engine: Runtime, data: str | Path, *, max_images: int | None, tick: Tick = None) -> TaskMeasurement:
    """The bundle's task metric on `data` (an ImageFolder for classify, a COCO split for detect, a mask split for segment)."""
    task = engine.bundle.manifest.task
    measure = MEASUREMENTS.get(task)
    if measure is None:
        from ..errors import ConfigError

        raise ConfigError(f"edgevision bench has no accuracy metric for task {task.value}; run it without --data.")
    return measure(engine, Path(data), max_images, tick)


def _top1(engine: Runtime, data: Path, max_images: int | None, tick: Tick) -> TaskMeasurement:
    from ..data.folder import ImageFolder

    if (data / "annotations.json").is_file():
        raise _wrong_data(engine, data, "a COCO detection split", "top-1 on an image folder (one folder per class)")
    folder = ImageFolder.open(data, labels=engine.bundle.manifest.labels)
    if max_images:
        folder = folder.subset(max_images)
    correct = 0
    for images, labels in folder.batches(32):
        correct += int(np.sum(engine.predict(images).argmax(1) == labels))
        if tick:
            tick("accuracy", len(labels))
    return TaskMeasurement(name="top-1", value=correct / len(folder), images=len(folder))


def _coco_map(engine: Runtime, data: Path, max_images: int | None, tick: Tick) -> TaskMeasurement:
    """Each test image once, batch 1, as a camera feeds a device: timed in three steps, then scored."""
    from ..data.coco import CocoDetections
    from ..metrics.detection import EVAL_SCORE_THRESHOLD, coco_map
    from ..preprocess import letterbox_geometry, preprocess_batch
    from ..tasks.detect import postprocess_batch

    manifest = engine.bundle.manifest
    if data.is_dir() and not (data / "annotations.json").exists() and any(p.is_dir() for p in data.iterdir()):
        raise _wrong_data(engine, data, "an image folder (one folder per class)",
                          "COCO mAP on a detection split (images/ + annotations.json)")
    dataset = CocoDetections.open(data, labels=manifest.labels)
    if max_images:
        dataset = dataset.subset(max_images)
    output = manifest.detection.output
    scored, post_ms, total_ms = [], [], []
    for image, _target in dataset:
        start = time.perf_counter()
        batch = preprocess_batch([image], manifest.preprocess, engine.input_spec)
        raw = engine.infer_outputs(batch)[output]
        inferred = time.perf_counter()
        boxes = [letterbox_geometry(*image.shape[:2], manifest.preprocess)]
        postprocess_batch(raw, manifest, boxes)  # what the device runs: the deployment thresholds
        done = time.perf_counter()
        post_ms.append((done - inferred) * 1000.0)
        total_ms.append((done - start) * 1000.0)
        scored.extend(postprocess_batch(raw, manifest, boxes, score_threshold=EVAL_SCORE_THRESHOLD))
        if tick:
            tick("accuracy", 1)
    metrics = coco_map(dataset, scored)
    return TaskMeasurement(
        name="mAP50-95", value=metrics.map50_95, images=metrics.images, extras={"mAP50": metrics.map50},
        postprocess_ms=post_ms, end_to_end_ms=total_ms,
    )


def _miou(engine: Runtime, data: Path, max_images: int | None, tick: Tick) -> TaskMeasurement:
    """Each test image once, batch 1, timed in three steps as detection is; scored against its mask in image pixels."""
    from ..data.masks import MASKS, MaskFolder
    from ..metrics.segmentation import ConfusionMatrix
    from ..preprocess import letterbox_geometry, preprocess_batch
    from ..tasks.segment import postprocess_masks, require_segmentation

    manifest = engine.bundle.manifest
    spec = require_segmentation(manifest)
    if data.is_dir() and not (data / MASKS).is_dir():
        if (data / "annotations.json").is_file():
            raise _wrong_data(engine, data, "a COCO detection split (no masks/)", _MASK_SPLIT)
        if any(p.is_dir() for p in data.iterdir()) and not (data / "images").is_dir():
            raise _wrong_data(engine, data, "an image folder (one folder per class)", _MASK_SPLIT)
    folder = MaskFolder.open(data, labels=manifest.labels, ignore_index=spec.ignore_index)
    if max_images:
        folder = folder.subset(max_images)
    matrix = ConfusionMatrix(manifest.num_classes, ignore_index=spec.ignore_index)
    post_ms, total_ms = [], []
    for image, truth in folder:
        start = time.perf_counter()
        raw = engine.infer_outputs(preprocess_batch([image], manifest.preprocess, engine.input_spec))[spec.output]
        inferred = time.perf_counter()
        (mask,) = postprocess_masks(raw, manifest, [letterbox_geometry(*image.shape[:2], manifest.preprocess)])
        done = time.perf_counter()
        post_ms.append((done - inferred) * 1000.0)
        total_ms.append((done - start) * 1000.0)
        matrix.update(mask.class_ids, truth)
        if tick:
            tick("accuracy", 1)
    metrics = matrix.metrics()
    return TaskMeasurement(
        name="mIoU", value=metrics.miou, images=metrics.images, extras={"pixel_accuracy": metrics.pixel_accuracy},
        postprocess_ms=post_ms, end_to_end_ms=total_ms,
    )


_MASK_SPLIT = "mIoU on a mask split (images/ + masks/ + labels.txt)"


def _wrong_data(engine: Runtime, data: Path, found: str, wanted: str) -> Exception:
    from ..errors import ConfigError

    task = engine.bundle.manifest.task.value
    return ConfigError(f"{engine.bundle.path} is a {task} model, measured by {wanted}; {data} is {found}. "
                       f"Pass the {task} data set's test split.")


MEASUREMENTS: dict[Task, Callable[[Runtime, Path, int | None, Tick], TaskMeasurement]] = {
    Task.CLASSIFY: _top1,
    Task.DETECT: _coco_map,
    Task.SEGMENT: _miou,
}
