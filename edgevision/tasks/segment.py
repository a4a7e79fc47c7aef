"""Segmentation post-processing on the device: raw per-pixel scores → one class per pixel of the original frame.

numpy and OpenCV only (never torch): this runs on a Pi, after the engine. The raw output has one of two
documented layouts (`SegmentationLayout`): `[N, classes, h, w]` float scores (logits or probabilities:
only their order matters) or `[N, h, w]` integer class ids. h×w is the model input's size or a fraction
of it (a stride-8 head): the device upsamples.

Per image: scores → class ids at the output's resolution (argmax) → nearest-neighbour up to the model
input (when the output is smaller) → the letterbox's image area cut out → nearest-neighbour to the
original frame. Argmax first, then resize ids: resizing C float maps to the frame first would cost C times
the memory traffic for boundaries that differ by at most a pixel of the model input.

Timing post-processing apart from inference (what `edgevision bench` reports), the steps of
`Runtime.segment` are public:

    letterboxes = letterboxes_for(images, manifest.preprocess)
    raw = runtime.infer_outputs(preprocess_batch(images, manifest.preprocess, runtime.input_spec))
    masks = postprocess_masks(raw[manifest.segmentation.output], manifest, letterboxes)  # ← post-processing
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import opencv
from ..bundle import Manifest, SegmentationSpec
from ..errors import ConfigError
from ..preprocess import Letterbox
from ..types import SegmentationLayout, Task
from .detect import class_names

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither


@dataclass(frozen=True, eq=False)
class SegmentationMask:
    """One image's classes, a class index per pixel of the ORIGINAL image. The array is read-only.

    class_ids: H×W uint8 (≤ 255 classes) or int32, indices into `labels`; `background_class` the index
    that means "no object" (None: every class is an object).
    """

    class_ids: np.ndarray
    labels: tuple[str, ...]
    background_class: int | None = 0

    def __post_init__(self) -> None:
        ids = np.asarray(self.class_ids)
        if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
            raise ConfigError(f"A segmentation mask is an H×W array of integer class ids, got {ids.dtype} {ids.shape}.")
        if ids.size and self.labels and (int(ids.min()) < 0 or int(ids.max()) >= len(self.labels)):
            raise ConfigError(f"Mask class ids must index the {len(self.labels)} labels, got {int(ids.min())}..{int(ids.max())}.")
        ids = np.array(ids, dtype=np.uint8 if len(self.labels) <= 256 else np.int32)
        ids.setflags(write=False)
        object.__setattr__(self, "class_ids", ids)
        object.__setattr__(self, "labels", tuple(self.labels))

    @property
    def shape(self) -> tuple[int, int]:
        return self.class_ids.shape  # type: ignore[return-value]

    def area_fractions(self, *, include_background: bool = False) -> dict[str, float]:
        """Share of the frame each class covers (0..1), largest first; classes absent from the frame are left out."""
        counts = np.bincount(self.class_ids.reshape(-1), minlength=len(self.labels))
        total = max(1, self.class_ids.size)
        shares = {
            self.labels[k]: float(counts[k]) / total
            for k in np.flatnonzero(counts)
            if include_background or k != self.background_class
        }
        return dict(sorted(shares.items(), key=lambda item: -item[1]))

    def binary(self, label: str) -> np.ndarray:
        """H×W bool: the pixels of one class (e.g. "person" for a virtual background)."""
        try:
            index = self.labels.index(label)
        except ValueError:
            raise ConfigError(f"No class {label!r} in this mask; labels: {', '.join(self.labels)}.") from None
        return self.class_ids == index

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the per-pixel array stays out of a JSON line): size and area per class."""
        height, width = self.shape
        return {"height": height, "width": width,
                "area_fractions": {k: round(v, 6) for k, v in self.area_fractions().items()}}

    def __repr__(self) -> str:
        shares = ", ".join(f"{k}: {v:.1%}" for k, v in list(self.area_fractions().items())[:5])
        return f"SegmentationMask({self.shape[1]}×{self.shape[0]}, {shares or 'background only'})"


def require_segmentation(manifest: Manifest) -> SegmentationSpec:
    """The bundle's decoding spec; a classifier or detector gets one clear error instead of masks."""
    if manifest.task is not Task.SEGMENT or manifest.segmentation is None:
        raise ConfigError(
            f"Bundle {manifest.name!r} is a {manifest.task.value} model: it has no per-pixel classes. "
            "Use runtime.predict(images) for class scores or runtime.detect(images) for boxes, "
            "or export a segmenter (task segment)."
        )
    return manifest.segmentation


def postprocess_masks(raw: np.ndarray, manifest: Manifest, letterboxes: Sequence[Letterbox]) -> list[SegmentationMask]:
    """Raw output of a batch ([N, classes, h, w] scores or [N, h, w] ids) → one mask per image, in its own pixels."""
    spec = require_segmentation(manifest)
    raw = np.asarray(raw)
    expected_ndim = 4 if spec.layout is SegmentationLayout.CLASS_SCORES else 3
    if raw.ndim != expected_ndim or raw.shape[0] != len(letterboxes):
        layout = "(N, classes, h, w)" if expected_ndim == 4 else "(N, h, w)"
        raise ConfigError(
            f"Raw segmentation output has shape {raw.shape}; this bundle's layout is {layout} with N = "
            f"{len(letterboxes)} images, one letterbox each."
        )
    labels = class_names(manifest)
    size = tuple(manifest.preprocess.size)
    return [decode_mask(raw[i], spec, letterboxes[i], size, labels) for i in range(raw.shape[0])]


def decode_mask(
    raw: np.ndarray, spec: SegmentationSpec, letterbox: Letterbox, input_size: tuple[int, int], labels: Sequence[str]
) -> SegmentationMask:
    """One image's raw output (classes × h × w scores, or h × w ids) → its mask in original-image pixels."""
    ids = model_input_ids(raw, spec, input_size, len(labels))
    top, left = letterbox.top, letterbox.left
    resized_h, resized_w = letterbox.resized
    inside = ids[top : top + resized_h, left : left + resized_w]
    height, width = letterbox.source
    if inside.shape != (height, width):
        inside = cv2.resize(inside, (width, height), interpolation=cv2.INTER_NEAREST)
    return SegmentationMask(inside, tuple(labels), spec.background_class)


def model_input_ids(raw: np.ndarray, spec: SegmentationSpec, input_size: tuple[int, int], classes: int) -> np.ndarray:
    """Class ids (uint8) at the model input's resolution: argmax over the scores, upsampled when the output is smaller.

    Parity and the accuracy metrics compare masks here, where every engine's pixels line up one to one.
    """
    raw = np.asarray(raw)
    if spec.layout is SegmentationLayout.CLASS_SCORES:
        if raw.ndim != 3 or raw.shape[0] != classes:
            hint = " It looks channels-last: pass raw.transpose(2, 0, 1)." if raw.ndim == 3 and raw.shape[2] == classes else ""
            raise ConfigError(
                f"Raw segmentation output for one image has shape {raw.shape}; this bundle's layout is ({classes} "
                f"classes, h, w).{hint} Check that the model's output is [N, classes, h, w] and the bundle's labels "
                "match its classes."
            )
        ids = raw.argmax(axis=0)
    else:
        if raw.ndim != 2:
            raise ConfigError(f"Raw class-id output for one image has shape {raw.shape}; expected (h, w).")
        ids = raw
    ids = ids.astype(np.uint8 if classes <= 256 else np.int32)
    height, width = input_size
    if ids.shape != (height, width):
        output_stride(ids.shape, input_size)
        if ids.dtype != np.uint8:  # OpenCV's nearest resize takes 8/16-bit and float; class ids > 255 as float
            ids = cv2.resize(ids.astype(np.float32), (width, height), interpolation=cv2.INTER_NEAREST).astype(np.int32)
        else:
            ids = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
    return ids


def output_stride(output_size: Sequence[int], input_size: Sequence[int]) -> int:
    """The one whole stride that takes the model input (h, w) to the output (h, w); a ConfigError otherwise."""
    (out_h, out_w), (height, width) = tuple(output_size), tuple(input_size)
    if out_h < 1 or out_w < 1 or height % out_h or width % out_w or height // out_h != width // out_w:
        raise ConfigError(
            f"Segmentation output {out_h}×{out_w} is not the model input {height}×{width} "
            "divided by one whole stride; export the model with its output at the input's size or a stride of it."
        )
    return height // out_h


def check_class_scores(shape: Sequence[int], classes: int, input_size: tuple[int, int], *, model: str) -> tuple[int, int]:
    """(h, w) of a segmenter's raw output of `shape` for ONE image, or a ConfigError saying what is wrong and the fix.

    The contract (`SegmentationLayout.CLASS_SCORES`): (1, classes, h, w), one score per label per pixel, h×w the
    model input's size or an integer stride of it. `model` names the model in the message.
    """
    shape = tuple(int(d) for d in shape)
    expected = f"(1, {classes}, h, w): one score per label ({classes} labels) per pixel"
    if len(shape) == 2:
        raise ConfigError(
            f"{model} outputs shape {shape} for one image, which looks like a classifier's logits; a segmenter outputs "
            f"{expected}. Use task classify for a classifier."
        )
    if len(shape) == 3 and shape[0] == 1:
        try:
            output_stride(shape[1:], input_size)
        except ConfigError:
            raise ConfigError(
                f"{model} outputs shape {shape} for one image, which looks like a detector's raw head (1, 4 + classes, "
                f"candidates); a segmenter outputs {expected}. Use task detect for a detector."
            ) from None
        raise ConfigError(
            f"{model} outputs shape {shape} for one image, which looks like class ids (an argmax inside the graph); "
            f"parity and accuracy compare per-class scores: re-export it without the argmax, outputting {expected}."
        )
    if len(shape) == 4 and shape[0] == 1 and shape[3] == classes and shape[1] != classes:
        raise ConfigError(
            f"{model} outputs shape {shape} for one image: channels last; a segmenter outputs {expected}, "
            "classes along axis 1. Re-export it without the final transpose."
        )
    if len(shape) != 4 or shape[0] != 1 or shape[1] != classes:
        found = f" ({shape[1]} classes)" if len(shape) == 4 else ""
        raise ConfigError(
            f"{model} outputs shape {shape}{found} for one image; a segmenter outputs {expected}. Check the labels "
            "(one per output channel, in order) or the task."
        )
    output_stride(shape[2:], input_size)
    return shape[2], shape[3]
