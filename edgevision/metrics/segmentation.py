"""mIoU and pixel accuracy of segmentation masks, from one confusion matrix accumulated over a data set.

The standard semantic-segmentation evaluation (PASCAL VOC, Cityscapes, torchvision's reference
scripts): one classes × classes confusion matrix summed over every pixel of every image, then per class
IoU = TP / (TP + FP + FN); mIoU averages the classes that occur (in the ground truth or the prediction),
pixel accuracy is the diagonal over the total. Pixels whose ground truth is `ignore_index` count nowhere.
numpy only (the device runs it in `edgevision bench`); tests check it against scikit-learn's
`confusion_matrix` and `jaccard_score` on the same masks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class SegmentationMetrics:
    """mIoU (over the classes that occur), pixel accuracy, per-class IoU (NaN: the class never occurred)."""

    miou: float
    pixel_accuracy: float
    class_iou: tuple[float, ...]
    pixels: int
    images: int

    def __post_init__(self) -> None:
        for name in ("miou", "pixel_accuracy"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}.")

    def describe(self) -> str:
        return f"mIoU {self.miou:.3f}, pixel accuracy {self.pixel_accuracy:.3f} ({self.images} images)"


class ConfusionMatrix:
    """classes × classes pixel counts; rows: ground truth, columns: prediction."""

    def __init__(self, classes: int, *, ignore_index: int | None = 255) -> None:
        if classes < 1:
            raise ConfigError(f"A confusion matrix needs at least one class, got {classes}.")
        self.classes = classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((classes, classes), dtype=np.int64)
        self.images = 0

    def update(self, prediction: np.ndarray, target: np.ndarray) -> None:
        """Add one image (or a batch) of predicted and ground-truth class ids, the same shape."""
        prediction, target = np.asarray(prediction), np.asarray(target)
        if prediction.shape != target.shape:
            raise ConfigError(
                f"Prediction {prediction.shape} and ground truth {target.shape} masks differ in size; "
                "map the prediction back to the annotated image first (Runtime.segment does)."
            )
        keep = np.ones(target.shape, bool) if self.ignore_index is None else target != self.ignore_index
        truth, guess = target[keep].astype(np.int64), prediction[keep].astype(np.int64)
        for name, ids in (("ground truth", truth), ("prediction", guess)):
            if ids.size and (ids.min() < 0 or ids.max() >= self.classes):
                raise ConfigError(
                    f"A {name} mask holds class id {int(ids.max() if ids.max() >= self.classes else ids.min())}, "
                    f"outside 0..{self.classes - 1}; check the labels (and that unlabelled pixels are {self.ignore_index})."
                )
        self.counts += np.bincount(truth * self.classes + guess, minlength=self.classes**2).reshape(self.classes, self.classes)
        self.images += 1 if target.ndim == 2 else int(np.prod(target.shape[:-2]))

    def metrics(self) -> SegmentationMetrics:
        true_positive = np.diag(self.counts).astype(np.float64)
        union = self.counts.sum(axis=0) + self.counts.sum(axis=1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, true_positive / union, np.nan)
        total = int(self.counts.sum())
        occurring = iou[~np.isnan(iou)]
        return SegmentationMetrics(
            miou=float(occurring.mean()) if occurring.size else 0.0,
            pixel_accuracy=float(true_positive.sum() / total) if total else 0.0,
            class_iou=tuple(float(v) for v in iou),
            pixels=total,
            images=self.images,
        )


def segmentation_metrics(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], classes: int, *, ignore_index: int | None = 255
) -> SegmentationMetrics:
    """(prediction, ground truth) mask pairs → mIoU and pixel accuracy over all of them."""
    matrix = ConfusionMatrix(classes, ignore_index=ignore_index)
    for prediction, target in pairs:
        matrix.update(prediction, target)
    return matrix.metrics()


def agreement_miou(exported: Iterable[np.ndarray], source: Iterable[np.ndarray], classes: int) -> float:
    """Parity: mIoU of one engine's masks against the source model's masks taken as ground truth."""
    return segmentation_metrics(zip(exported, source, strict=True), classes, ignore_index=None).miou
