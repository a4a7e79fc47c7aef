"""Task heads: turn one frame's raw model output into a payload sinks can draw and serialise.

Heads are chosen by name through `HEADS` (third parties: the ``edgevision.heads`` entry-point
group). A head sees the model output for one frame plus `FrameMeta`, so a detection head
(decode boxes, NMS, scale to the frame size) drops in without touching the pipeline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..bundle import Manifest
from ..errors import ConfigError
from ..registry import Registry
from .results import Classification, FrameMeta, Payload, Prediction


@dataclass(frozen=True, kw_only=True)
class HeadOptions:
    """Settings every head understands; a head with more subclasses this (see `options_type`)."""

    top_k: int = 5

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ConfigError(f"top_k must be 1 or more, got {self.top_k}.")


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


HEADS: Registry[type[TaskHead]] = Registry("task head", entry_point_group="edgevision.heads")
HEADS.register("classification", "edgevision.stream.heads:ClassificationHead")


def make_head(task: str, manifest: Manifest, options: HeadOptions | None = None) -> TaskHead:
    """The registered head for `task`, configured for this bundle."""
    return HEADS.get(task)(manifest, options)
