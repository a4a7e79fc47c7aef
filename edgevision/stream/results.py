"""What the stream produces: one validated result per frame, whatever the task.

A task head returns a *payload* (classification top-k, detection boxes, a segmentation mask). Sinks
never look inside it: they call `to_dict()` to serialise and `draw()` to annotate, so a new
task needs a head and a payload, not a change to the pipeline or the sinks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..tasks.detect import Detections
from ..tasks.segment import SegmentationMask
from .overlay import draw_caption, draw_detections, draw_segmentation


@runtime_checkable
class Payload(Protocol):
    """What a task head returns for one frame."""

    kind: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (no numpy types)."""
        ...

    def caption(self) -> str:
        """One short line for an overlay or a status line."""
        ...

    def draw(self, image: np.ndarray) -> None:
        """Annotate `image` (BGR uint8, the original frame size) in place."""
        ...


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What a head knows about the frame besides the model output (boxes need the size)."""

    index: int
    captured_at: float  # wall clock, seconds since the epoch
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    score: float  # softmax probability, 0..1

    def __post_init__(self) -> None:
        if not (0.0 <= self.score <= 1.0 + 1e-6) or math.isnan(self.score):
            raise ConfigError(f"Prediction score {self.score} for {self.label!r} must be a probability in [0, 1].")


@dataclass(frozen=True, slots=True)
class Classification:
    """Top-k labels of one frame, best first."""

    top_k: tuple[Prediction, ...]
    kind: str = field(default="classification", init=False)

    def __post_init__(self) -> None:
        if not self.top_k:
            raise ConfigError("A classification needs at least one prediction.")
        scores = [p.score for p in self.top_k]
        if any(a < b for a, b in itertools.pairwise(scores)):
            raise ConfigError(f"Top-k scores {scores} must be sorted best first.")

    @property
    def top1(self) -> Prediction:
        return self.top_k[0]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "top_k": [{"label": p.label, "score": round(p.score, 6)} for p in self.top_k]}

    def caption(self) -> str:
        return f"{self.top1.label} {self.top1.score:.0%}"

    def draw(self, image: np.ndarray) -> None:
        draw_caption(image, self.caption(), row=0)


@dataclass(frozen=True, slots=True)
class ObjectDetections:
    """The objects found in one frame: `detections` holds boxes in the frame's own pixels, best first."""

    detections: Detections
    kind: str = field(default="detection", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.detections, Detections):
            raise ConfigError(f"ObjectDetections needs a Detections, got {type(self.detections).__name__}.")

    def to_dict(self) -> dict[str, Any]:
        """{"kind": "detection", "detections": [{"box": [x1, y1, x2, y2], "score", "class_id", "label"}, ...]}."""
        return {"kind": self.kind, "detections": self.detections.to_dicts()}

    def caption(self) -> str:
        counts = self.detections.counts()
        return ", ".join(f"{n} {label}" for label, n in counts.items()) if counts else "no objects"

    def draw(self, image: np.ndarray) -> None:
        draw_detections(image, self.detections)


@dataclass(frozen=True, slots=True)
class Segmentation:
    """A class per pixel of one frame: `mask.class_ids` is H×W in the frame's own pixels.

    `area_fractions`: each class's share of the frame (0..1), largest first, the background and absent classes
    left out; computed once, for the JSON line, the legend and the caption alike.
    """

    mask: SegmentationMask
    kind: str = field(default="segmentation", init=False)
    area_fractions: Mapping[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.mask, SegmentationMask):
            raise ConfigError(f"Segmentation needs a SegmentationMask, got {type(self.mask).__name__}.")
        object.__setattr__(self, "area_fractions", MappingProxyType(self.mask.area_fractions()))

    def to_dict(self) -> dict[str, Any]:
        """{"kind": "segmentation", "height", "width", "area_fractions": {label: share}}: never the pixels."""
        height, width = self.mask.shape
        return {"kind": self.kind, "height": height, "width": width,
                "area_fractions": {label: round(share, 6) for label, share in self.area_fractions.items()}}

    def caption(self) -> str:
        shares = [f"{label} {share:.1%}" for label, share in self.area_fractions.items()]
        if not shares:
            return "background only"
        return ", ".join(shares[:3]) + (f", +{len(shares) - 3} more" if len(shares) > 3 else "")

    def draw(self, image: np.ndarray) -> None:
        draw_segmentation(image, self.mask, area_fractions=self.area_fractions)


@dataclass(frozen=True, slots=True)
class StageTimings:
    """Milliseconds spent on one frame in each stage."""

    capture_ms: float
    preprocess_ms: float
    infer_ms: float
    postprocess_ms: float

    def __post_init__(self) -> None:
        for name in ("capture_ms", "preprocess_ms", "infer_ms", "postprocess_ms"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigError(f"{name} must be >= 0 ms, got {value}.")

    def to_dict(self) -> dict[str, float]:
        return {name: round(getattr(self, name), 3) for name in STAGES}


#: Stage names in pipeline order (StageTimings field names).
STAGES = ("capture_ms", "preprocess_ms", "infer_ms", "postprocess_ms")


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One processed frame: which frame, when it was captured, what the head said, how long it took."""

    index: int  # position in the source; gaps mean dropped frames
    captured_at: float  # wall clock at capture, seconds since the epoch
    payload: Payload
    timings: StageTimings
    latency_ms: float  # capture → result ready (includes time waiting in the queue)

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ConfigError(f"Frame index must be >= 0, got {self.index}.")
        if not self.latency_ms >= 0:
            raise ConfigError(f"latency_ms must be >= 0, got {self.latency_ms}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "captured_at": round(self.captured_at, 6),
            **self.payload.to_dict(),
            "timings": self.timings.to_dict(),
            "latency_ms": round(self.latency_ms, 3),
        }
