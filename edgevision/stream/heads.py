"""Task heads: turn one frame's raw model output into a payload sinks can draw and serialise.

Heads are chosen by name through `HEADS` (third parties: the ``edgevision.heads`` entry-point
group); by default the bundle's task picks it (`head_name_for`: classify → top-k, detect → boxes,
segment → a class per pixel). A head sees the model output for one frame plus `FrameMeta` (the frame
size maps boxes and masks back onto the frame).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..bundle import DetectionSpec, Manifest, SegmentationSpec
from ..errors import ConfigError
from ..preprocess import Letterbox, letterbox_geometry
from ..registry import Registry
from ..tasks.detect import class_names, decode_detections, require_detection
from ..tasks.segment import decode_mask, require_segmentation
from ..types import Task
from .results import Classification, FrameMeta, ObjectDetections, Payload, Prediction, Segmentation


@dataclass(frozen=True, kw_only=True)
class HeadOptions:
    """Settings every head understands; a head with more subclasses this (see `options_type`)."""

    top_k: int = 5  # classification: labels kept per frame
    score_threshold: float | None = None  # detection: boxes kept from this score; None: the bundle's own

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"top_k must be 1 or more, got {self.top_k}.")
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"score_threshold must be in [0, 1], got {self.score_threshold}.")


class TaskHead(ABC):
    """Post-processing for one task, configured from the bundle's manifest."""

    name: ClassVar[str]
    options_type: ClassVar[type[HeadOptions]] = HeadOptions

    def __init__(self, manifest: Manifest, options: HeadOptions | None = None) -> None:
        options = options or self.options_type()
        if not isinstance(options, self.options_type):
            raise ConfigError(f"The {self.name} head takes {self.options_type.__name__}, got {type(options).__name__}.")
        self.manifest = manifest
        self.options = options

    @property
    def output_name(self) -> str | None:
        """The model output this head reads; None: the primary one (`Runtime.infer`)."""
        return None

    @abstractmethod
    def __call__(self, outputs: np.ndarray, meta: FrameMeta) -> Payload:
        """`outputs`: the runtime's output for this one frame (batch axis removed)."""


class ClassificationHead(TaskHead):
    """Softmax over the logits, then the `top_k` labels, best first."""

    name = "classification"

    def __init__(self, manifest: Manifest, options: HeadOptions | None = None) -> None:
        super().__init__(manifest, options)
        self._labels = manifest.labels or tuple(str(i) for i in range(manifest.num_classes))
        self._k = min(self.options.top_k, manifest.num_classes)

    def __call__(self, outputs: np.ndarray, meta: FrameMeta) -> Classification:
        logits = np.asarray(outputs, dtype=np.float64).reshape(-1)
        if logits.shape[0] != len(self._labels):
            raise ConfigError(
                f"The model gave {logits.shape[0]} outputs per frame but the bundle has {len(self._labels)} labels; "
                "is this a classification bundle?"
            )
        exp = np.exp(logits - logits.max())
        probs = exp / exp.sum()
        order = np.argsort(-probs, kind="stable")[: self._k]
        return Classification(top_k=tuple(Prediction(self._labels[i], float(probs[i])) for i in order))


class _LetterboxedHead(TaskHead):
    """A head that maps its output back through the frame's letterbox and may read a non-primary output.

    Subclasses set `_spec` (a DetectionSpec or SegmentationSpec: its `output` names the output they read).
    """

    _spec: DetectionSpec | SegmentationSpec

    def __init__(self, manifest: Manifest, options: HeadOptions | None = None) -> None:
        super().__init__(manifest, options)
        self._labels = class_names(manifest)
        self._input_size = tuple(manifest.preprocess.size)
        self._letterboxes: dict[tuple[int, int], Letterbox] = {}  # a stream's frames share one size

    @property
    def output_name(self) -> str | None:
        return None if self._spec.output == self.manifest.output_name else self._spec.output

    def _letterbox(self, meta: FrameMeta) -> Letterbox:
        letterbox = self._letterboxes.get((meta.height, meta.width))
        if letterbox is None:
            letterbox = letterbox_geometry(meta.height, meta.width, self.manifest.preprocess)
            self._letterboxes[(meta.height, meta.width)] = letterbox
        return letterbox


class DetectionHead(_LetterboxedHead):
    """Decode the raw head (threshold, NMS) into boxes in the frame's own pixels (`edgevision.tasks.detect`)."""

    name = "detection"

    def __init__(self, manifest: Manifest, options: HeadOptions | None = None) -> None:
        self._spec = require_detection(manifest)  # a classify bundle: one clear error, here
        super().__init__(manifest, options)

    def __call__(self, outputs: np.ndarray, meta: FrameMeta) -> ObjectDetections:
        detections = decode_detections(outputs, self._spec, self._letterbox(meta), self._input_size, self._labels,
                                       score_threshold=self.options.score_threshold)
        return ObjectDetections(detections)


class SegmentationHead(_LetterboxedHead):
    """A class per pixel of the frame (`edgevision.tasks.segment`: argmax, upsample, the letterbox undone)."""

    name = "segmentation"

    def __init__(self, manifest: Manifest, options: HeadOptions | None = None) -> None:
        self._spec = require_segmentation(manifest)  # a classifier or detector: one clear error, here
        super().__init__(manifest, options)

    def __call__(self, outputs: np.ndarray, meta: FrameMeta) -> Segmentation:
        return Segmentation(decode_mask(outputs, self._spec, self._letterbox(meta), self._input_size, self._labels))


HEADS: Registry[type[TaskHead]] = Registry("task head", entry_point_group="edgevision.heads")
HEADS.register("classification", "edgevision.stream.heads:ClassificationHead")
HEADS.register("detection", "edgevision.stream.heads:DetectionHead")
HEADS.register("segmentation", "edgevision.stream.heads:SegmentationHead")

#: The head each bundle task gets unless the caller names one.
HEAD_FOR_TASK = {Task.CLASSIFY: "classification", Task.DETECT: "detection", Task.SEGMENT: "segmentation"}


def head_name_for(manifest: Manifest) -> str:
    """The head for the bundle's task (classify → "classification", detect → "detection", segment → "segmentation")."""
    try:
        return HEAD_FOR_TASK[manifest.task]
    except KeyError:
        raise ConfigError(
            f"No stream head for task {manifest.task.value!r}; name one with StreamConfig(task=...) "
            f"(registered: {', '.join(HEADS.names())})."
        ) from None


def make_head(task: str | None, manifest: Manifest, options: HeadOptions | None = None) -> TaskHead:
    """The registered head `task` (None: the one for the bundle's task), configured for this bundle.

    A head named for a bundle of another task fails once, here, saying which head the bundle's own task has.
    """
    head_type = HEADS.get(task or head_name_for(manifest))
    try:
        return head_type(manifest, options)
    except ConfigError as exc:
        own = HEAD_FOR_TASK.get(manifest.task)
        if task is None or own is None or own == task:
            raise
        raise ConfigError(f"{exc} In a stream, name no head (StreamConfig(task=None)) to get this bundle's own, "
                          f"{own!r}.") from None
