"""Detection post-processing on the device: raw head → thresholded, NMS'd boxes in original-image pixels.

numpy and OpenCV only (never torch): this runs on a Pi, after the engine. The raw output has one
documented layout, `[N, 4 + classes, candidates]` float32 (`DetectionLayout.BOXES_SCORES`): rows 0..3
a box (`BoxFormat`, centre-x/centre-y/w/h by default), rows 4.. one score per class, already sigmoid.
Box numbers are fractions of the model input (`normalized_boxes`, edgevision's detector) or model-input
pixels (Ultralytics YOLOv8/YOLO11 exports, which therefore run unchanged).

Per image: best class per candidate → score threshold (`>=`) → xyxy in input pixels → greedy NMS (per
class with `cv2.dnn.NMSBoxesBatched`, or over all classes with `cv2.dnn.NMSBoxes`) → the `max_detections`
best → back through the letterbox to the original image, clipped to it.

NMS runs best first, 2 × max_detections candidates at a time, and stops once max_detections boxes are
kept. Each chunk is first checked against the boxes already kept (numpy, all pairs at once: they all
score higher, so order does not matter), then OpenCV's NMS runs on what is left. The boxes are those of
one greedy NMS over every candidate, cut at max_detections; but that one OpenCV call costs ~40 ns per
candidate × kept-box pair and cannot stop early: on 8,400 scattered candidates (a YOLOv8 at 640 px, mAP
threshold) it took 0.13 s (all classes) to 0.39 s (per class) of CPU here; chunked, 1-2 ms.

Best class, not every class above the threshold (Ultralytics' `multi_label` validation): one box per
object is what a deployed detector reports, and the mAP edgevision measures is then the mAP of exactly
what the device ships (multi-label, at 0.001, scores a little higher by adding second-class boxes).

Timing post-processing apart from inference (what `edgevision bench` reports), the three steps of
`Runtime.detect` are public:

    letterboxes = letterboxes_for(images, manifest.preprocess)
    raw = runtime.infer_outputs(preprocess_batch(images, manifest.preprocess, runtime.input_spec))
    detections = postprocess_batch(raw[manifest.detection.output], manifest, letterboxes)  # ← post-processing
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import opencv
from ..bundle import DetectionSpec, Manifest, PreprocessSpec
from ..errors import ConfigError, InputError
from ..preprocess import Letterbox, letterbox_geometry
from ..types import BoxFormat, DetectionLayout, Task

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

#: NMS runs on the candidates best first, this many per max_detections at a time, and stops once enough are kept.
NMS_CHUNK_PER_DETECTION = 2


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
        """Objects per label, most frequent first (ties: the label with the best box first)."""
        counts: dict[str, int] = {}
        for name in self.label_names:
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: -item[1]))

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
    a crash), and so are boxes wholly inside the letterbox padding (no area in the image: no user sees
    them, and COCO cannot match a zero-area box even to itself). OpenCV's NMS never keeps a score of 0.
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
    kept_boxes, kept_scores, kept_ids = np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    for candidates in _best_first_chunks(passed, best, NMS_CHUNK_PER_DETECTION * spec.max_detections):
        boxes = _to_xyxy_input_pixels(raw[:4, candidates].T.astype(np.float32), spec, input_size)
        scores = best[candidates].astype(np.float32)
        class_ids = class_scores[:, candidates].argmax(axis=0) if classes > 1 else np.zeros(len(candidates), np.int64)
        valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])
        in_frame = letterbox.to_source(boxes)  # a box wholly inside the letterbox padding clips to zero area
        valid &= (in_frame[:, 2] > in_frame[:, 0]) & (in_frame[:, 3] > in_frame[:, 1])
        if len(kept_scores):  # every kept box scores higher than this chunk: it suppresses regardless of order
            valid &= ~_overlaps_any(boxes, class_ids, kept_boxes, kept_ids, spec.iou_threshold, spec.class_agnostic)
        boxes, scores, class_ids = boxes[valid], scores[valid], class_ids[valid]
        picked = _nms(boxes, scores, class_ids, iou_threshold=spec.iou_threshold, class_agnostic=spec.class_agnostic)
        kept_boxes = np.concatenate([kept_boxes, boxes[picked]])
        kept_scores = np.concatenate([kept_scores, scores[picked]])
        kept_ids = np.concatenate([kept_ids, class_ids[picked]])
        if len(kept_scores) >= spec.max_detections:
            break
    keep = slice(0, spec.max_detections)
    return Detections(letterbox.to_source(kept_boxes[keep]), np.minimum(kept_scores[keep], 1.0), kept_ids[keep],
                      tuple(labels))


def _best_first_chunks(passed: np.ndarray, best: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """The `passed` candidates best first (ties: candidate order), `size` at a time.

    Sorts only the best 4 × `size` at first (a partial sort); the rest only if NMS gets that far.
    """
    if len(passed) <= 4 * size:
        order = passed[np.argsort(-best[passed], kind="stable")]
        yield from (order[i : i + size] for i in range(0, len(order), size))
        return
    head = np.sort(passed[np.argpartition(-best[passed], 4 * size)[: 4 * size]])
    head = head[np.argsort(-best[head], kind="stable")]
    yield from (head[i : i + size] for i in range(0, len(head), size))
    rest = np.setdiff1d(passed, head, assume_unique=True)
    rest = rest[np.argsort(-best[rest], kind="stable")]
    yield from (rest[i : i + size] for i in range(0, len(rest), size))


def _overlaps_any(
    boxes: np.ndarray, class_ids: np.ndarray, kept: np.ndarray, kept_ids: np.ndarray, iou_threshold: float,
    class_agnostic: bool,
) -> np.ndarray:
    """Per box: IoU > iou_threshold with some kept box (of the same class unless class-agnostic); all pairs at once."""
    a, b = boxes.astype(np.float64)[:, None, :], kept.astype(np.float64)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    over = inter > iou_threshold * (area_a + area_b - inter)
    if not class_agnostic:
        over &= class_ids[:, None] == kept_ids[None, :]
    return over.any(axis=1)


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
    """Indices kept by OpenCV's NMS (greedy, IoU > threshold suppresses), best first. OpenCV takes x, y, w, h
    and its own score threshold (strictly greater; 0 here, the threshold is applied before)."""
    if len(scores) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([boxes_xyxy[:, :2], boxes_xyxy[:, 2:] - boxes_xyxy[:, :2]], axis=1)
    if class_agnostic or (len(class_ids) and class_ids.min() == class_ids.max()):
        kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, float(iou_threshold))
    elif hasattr(cv2.dnn, "NMSBoxesBatched"):
        kept = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids.astype(np.int32), 0.0, float(iou_threshold))
    else:  # OpenCV < 4.7 (Raspberry Pi OS Bookworm's apt build is 4.6): the same per-class NMS by offsetting
        # each class's boxes into a region of their own, so boxes of different classes never overlap.
        shifted = xywh.copy()
        shifted[:, :2] += class_ids[:, None].astype(np.float32) * (float(np.abs(boxes_xyxy).max()) * 2.0 + 1.0)
        kept = cv2.dnn.NMSBoxes(shifted, scores, 0.0, float(iou_threshold))
    return np.asarray(kept, dtype=np.int64).reshape(-1)
