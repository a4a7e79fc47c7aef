"""Detection post-processing on the device: raw head → thresholded, NMS'd boxes in original-image pixels.

numpy and OpenCV only (never torch): this runs on a Pi, after the engine. The raw output has one
documented layout, `[N, 4 + classes, candidates]` float32 (`DetectionLayout.BOXES_SCORES`): rows 0..3
a box (`BoxFormat`, centre-x/centre-y/w/h by default), rows 4.. one score per class, already sigmoid.
Box numbers are fractions of the model input (`normalized_boxes`, edgevision's detector) or model-input
pixels (Ultralytics YOLOv8/YOLO11 exports, which therefore run unchanged).

Per image: best class per candidate → score threshold (`>=`) → xyxy in input pixels → NMS (per class
with `cv2.dnn.NMSBoxesBatched`, or over all classes with `cv2.dnn.NMSBoxes`) → the `max_detections`
best → back through the letterbox to the original image, clipped to it.

Best class, not every class above the threshold (Ultralytics' `multi_label` validation): one box per
object is what a deployed detector reports, and the mAP edgevision measures is then the mAP of exactly
what the device ships (multi-label would add a point or so of mAP on a real model at 0.001).

Timing post-processing apart from inference (what `edgevision bench` reports), the three steps of
`Runtime.detect` are public:

    letterboxes = letterboxes_for(images, manifest.preprocess)
    raw = runtime.infer_outputs(preprocess_batch(images, manifest.preprocess, runtime.input_spec))
    detections = postprocess_batch(raw[manifest.detection.output], manifest, letterboxes)  # ← post-processing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import opencv
from ..bundle import DetectionSpec, Manifest, PreprocessSpec
from ..errors import ConfigError, InputError
from ..preprocess import Letterbox, letterbox_geometry
from ..types import BoxFormat, DetectionLayout, Task

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

#: The first NMS pass sees this many candidates (best first) per max_detections; ×4 per pass until enough survive.
NMS_FIRST_CANDIDATES_PER_DETECTION = 2


@dataclass(frozen=True, eq=False)
class Detections:
    """One image's objects, best score first. Arrays are read-only.

    boxes: K×4 float32 xyxy (left, top, right, bottom) in ORIGINAL-image pixels; scores: K float32 in
    0..1; class_ids: K int64, indices into `labels` (the model's class names; COCO category_id is
    class id + 1).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.array(self.scores, dtype=np.float32).reshape(-1)
        class_ids = np.array(self.class_ids, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(class_ids):
            raise ConfigError(
                f"Detections need one score and one class id per box: got {len(boxes)} boxes, {len(scores)} scores, "
                f"{len(class_ids)} class ids."
            )
        if not np.isfinite(boxes).all() or (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
            raise ConfigError("Detection boxes must be finite xyxy with right >= left and bottom >= top.")
        if not ((scores >= 0) & (scores <= 1)).all():
            raise ConfigError(f"Detection scores must be in [0, 1], got {scores[~((scores >= 0) & (scores <= 1))][:3]}.")
        if len(class_ids) and (class_ids.min() < 0 or (self.labels and class_ids.max() >= len(self.labels))):
            raise ConfigError(f"Class ids must index the {len(self.labels)} labels, got {sorted(set(class_ids.tolist()))}.")
        for name, array in (("boxes", boxes), ("scores", scores), ("class_ids", class_ids)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        object.__setattr__(self, "labels", tuple(self.labels))

    @classmethod
    def empty(cls, labels: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), tuple(labels))

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label of each detection (the class id as text when the bundle has no labels)."""
        return tuple(self.labels[k] if self.labels else str(k) for k in self.class_ids.tolist())

    def counts(self) -> dict[str, int]:
        """Objects per label, most frequent first."""
        names, counts = np.unique(np.array(self.label_names, dtype=object), return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {str(names[i]): int(counts[i]) for i in order}

    def to_dicts(self) -> list[dict[str, Any]]:
        """JSON-ready: one {"box": [x1, y1, x2, y2] (original pixels), "score", "class_id", "label"} per object."""
        return [
            {"box": [round(v, 2) for v in box], "score": round(score, 6), "class_id": k, "label": label}
            for box, score, k, label in zip(
                self.boxes.tolist(), self.scores.tolist(), self.class_ids.tolist(), self.label_names
            )
        ]

    def __repr__(self) -> str:
        return f"Detections({len(self)} objects: {self.counts()})"


def require_detection(manifest: Manifest) -> DetectionSpec:
    """The bundle's decoding spec; a classifier gets one clear error instead of boxes."""
    if manifest.task is not Task.DETECT or manifest.detection is None:
        raise ConfigError(
            f"Bundle {manifest.name!r} is a {manifest.task.value} model: it has no boxes to detect. "
            "Use runtime.predict(images) for its class scores, or export a detector (task detect)."
        )
    if manifest.detection.layout is not DetectionLayout.BOXES_SCORES:
        raise ConfigError(f"Detection layout {manifest.detection.layout.value!r} has no decoder here.")
    return manifest.detection


def class_names(manifest: Manifest) -> tuple[str, ...]:
    """The bundle's labels, or "0", "1", ... when it has none."""
    return manifest.labels or tuple(str(k) for k in range(manifest.num_classes))


def letterboxes_for(images: Sequence[np.ndarray], preprocess: PreprocessSpec) -> list[Letterbox]:
    """Where each raw image (H×W[×C]) lands in the model input: the way its boxes map back."""
    boxes = []
    for image in images:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise InputError(f"Expected an H×W×3 image array, got {getattr(image, 'shape', type(image).__name__)}.")
        boxes.append(letterbox_geometry(image.shape[0], image.shape[1], preprocess))
    return boxes


def postprocess_batch(
    raw: np.ndarray,
    manifest: Manifest,
    letterboxes: Sequence[Letterbox],
    *,
    score_threshold: float | None = None,
) -> list[Detections]:
    """Raw head output of a batch (N, 4 + classes, candidates) → one `Detections` per image.

    `letterboxes[i]` is image i's geometry (`letterboxes_for`); `score_threshold` None: the bundle's
    deployment threshold (use `edgevision.metrics.detection.EVAL_SCORE_THRESHOLD` for mAP).
    """
    spec = require_detection(manifest)
    raw = np.asarray(raw)
    if raw.ndim != 3 or raw.shape[0] != len(letterboxes):
        raise ConfigError(
            f"Raw detection output has shape {raw.shape}; expected (N, 4 + classes, candidates) with N = "
            f"{len(letterboxes)} images, one letterbox each."
        )
    labels = class_names(manifest)
    size = tuple(manifest.preprocess.size)
    return [
        decode_detections(raw[i], spec, letterboxes[i], size, labels, score_threshold=score_threshold)
        for i in range(raw.shape[0])
    ]


def decode_detections(
    raw: np.ndarray,
    spec: DetectionSpec,
    letterbox: Letterbox,
    input_size: tuple[int, int],
    labels: Sequence[str],
    *,
    score_threshold: float | None = None,
) -> Detections:
    """One image's raw head (4 + classes, candidates) → its `Detections` in original-image pixels.

    `input_size` is the model input (height, width): normalised boxes are fractions of it.
    Candidates with a non-finite or negative-size box are dropped (a broken model gives no boxes, not
    a crash). OpenCV's NMS never keeps a score of exactly 0.
    """
    threshold = spec.score_threshold if score_threshold is None else float(score_threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"score_threshold must be in [0, 1], got {score_threshold}.")
    raw = np.asarray(raw)
    classes = len(labels)
    if raw.ndim != 2 or raw.shape[0] != 4 + classes:
        hint = " It looks transposed: pass raw.T." if raw.ndim == 2 and raw.shape[1] == 4 + classes else ""
        raise ConfigError(
            f"Raw detection output for one image has shape {raw.shape}; this bundle's layout is (4 + {classes} "
            f"classes, candidates) = ({4 + classes}, A).{hint} Check that the model's output is "
            "[N, 4 + classes, candidates] and the bundle's labels match its classes."
        )
    class_scores = raw[4:]
    best = class_scores.max(axis=0) if classes > 1 else class_scores[0]
    passed = np.flatnonzero(best >= threshold)
    # Greedy NMS keeps a box only for what it overlaps among better ones, so running it on the best
    # `count` candidates gives exactly the full run's picks among them: once that yields max_detections
    # boxes the rest cannot matter. OpenCV's NMS costs candidates × kept, so this bounds a low-threshold
    # run (mAP evaluation: thousands of candidates) at a few hundred candidates instead of all of them.
    count = NMS_FIRST_CANDIDATES_PER_DETECTION * spec.max_detections
    while True:
        candidates = _best_first(passed, best, count)
        boxes = _to_xyxy_input_pixels(raw[:4, candidates].T.astype(np.float32), spec, input_size)
        scores = best[candidates].astype(np.float32)
        class_ids = class_scores[:, candidates].argmax(axis=0) if classes > 1 else np.zeros(len(candidates), np.int64)
        valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])
        if not valid.all():
            boxes, scores, class_ids = boxes[valid], scores[valid], class_ids[valid]
        picked = _nms(boxes, scores, class_ids, iou_threshold=spec.iou_threshold, class_agnostic=spec.class_agnostic)
        if len(picked) >= spec.max_detections or count >= len(passed):
            break
        count *= 4
    picked = picked[: spec.max_detections]
    return Detections(letterbox.to_source(boxes[picked]), np.minimum(scores[picked], 1.0), class_ids[picked],
                      tuple(labels))


def _best_first(passed: np.ndarray, best: np.ndarray, count: int) -> np.ndarray:
    """The `count` best of the `passed` candidates, best first (ties: candidate order); a partial sort."""
    if count < len(passed):
        passed = np.sort(passed[np.argpartition(-best[passed], count)[:count]])
    return passed[np.argsort(-best[passed], kind="stable")]


def _to_xyxy_input_pixels(boxes: np.ndarray, spec: DetectionSpec, input_size: tuple[int, int]) -> np.ndarray:
    if spec.box_format is BoxFormat.CXCYWH:
        half = boxes[:, 2:] / 2
        boxes = np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)
    if spec.normalized_boxes:
        height, width = input_size
        boxes = boxes * np.array([width, height, width, height], dtype=np.float32)
    return boxes


def _nms(
    boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, *, iou_threshold: float, class_agnostic: bool
) -> np.ndarray:
    """Indices kept by OpenCV's NMS, best score first. OpenCV takes x, y, w, h and its own score threshold
    (strictly greater; 0 here, the threshold is applied before)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes_xyxy[:, :2], boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], axis=1)
    if class_agnostic or (len(class_ids) and class_ids.min() == class_ids.max()):
        kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold))
    else:
        kept = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids.astype(np.int32), 0.0, float(iou_threshold))
    return np.asarray(kept, dtype=np.int64).reshape(-1)
