"""Distillation and fine-tuning for segmenters: the original segmenter teaches the pruned one, pixel by pixel.

The loss per batch is

    (1 − alpha) · cross-entropy on the masks (class-weighted as the segmenter was trained, padding ignored)
    + alpha · T² · KL(student/T ‖ teacher/T) per pixel, averaged over the labelled pixels
    + feature_weight · channel-normalised MSE between the student's and the teacher's features that feed
      the class-score layers (through learned 1×1 adapters where pruning changed the width).

Pixel-wise KL on the logits is the standard dense distillation (Liu et al., "Structured Knowledge
Distillation for Semantic Segmentation", 2019, its pixel-wise term); the teacher's soft scores carry the
boundaries' uncertainty that one-hot masks do not. Fine-tune mode (`DistillConfig.as_fine_tune()`: alpha 0,
feature_weight 0) is the same loop with the masks alone, so both spend one budget and schedule. Val mIoU
(the deployable graph, decoded as on the device, compared on the original frames) chooses the epoch.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import ConfigError
from ..model import TrainedModel
from ..train import EpochCallback
from ..types import Task
from .distill import DistillConfig, DistillReport
from .distributed import world
from .fit import EpochCheckpoint, FitResult, fit, torch_threads

GRADIENT_CLIP = 10.0  # as train_segment


def check_segmenter(model: TrainedModel) -> None:
    """Training a segmenter needs its masks' decoding (task segment with a SegmentationSpec)."""
    if model.task is not Task.SEGMENT or model.segmentation is None:
        raise ConfigError(f"{model.name} is a {model.task.value} model, not a segmenter (task segment).")


@dataclass
class SegmentationData:
    """A segmenter's mask splits (`MaskFolder`s), letterboxed once and cached as tensors (as train_segment does)."""

    model: TrainedModel
    train_images: Any | None  # N×3×H×W float32
    train_masks: Any | None  # N×H×W uint8, letterboxed, padding = ignore_index
    class_weights: Any | None
    val: Any | None  # MaskFolder
    val_images: Any | None
    val_masks: list[Any] | None  # the original masks (val is scored on the original frames)
    batch_size: int
    seed: int

    @classmethod
    def open(cls, model: TrainedModel, *, train_data: str | Path | None, val_data: str | Path | None,
             batch_size: int, seed: int) -> SegmentationData:
        from ..data.masks import MaskFolder
        from ..segment_loss import class_weights
        from ..train_segment import DEFAULT_CLASS_WEIGHT_POWER, cache_images, cache_training_set

        check_segmenter(model)
        ignore = model.segmentation.ignore_index
        train_images = train_masks = weights = val = val_images = val_masks = None
        if train_data is not None:
            train = _open(MaskFolder, train_data, model, ignore)
            train_images, train_masks = cache_training_set(train, model.preprocess)
            weights = class_weights(train_masks, len(model.labels), power=DEFAULT_CLASS_WEIGHT_POWER, ignore_index=ignore)
        if val_data is not None:
            val = _open(MaskFolder, val_data, model, ignore)
            val_images, val_masks = cache_images(val, model.preprocess), [val.mask(i) for i in range(len(val))]
        return cls(model, train_images, train_masks, weights, val, val_images, val_masks, batch_size, seed)

    def steps_per_epoch(self) -> int:
        size = world().size
        images = -(-len(self.train_masks if self.train_masks is not None else []) // size)
        return -(-images // max(self.batch_size // size, 1))

    def batches(self, *, epoch: int = 0) -> Iterator[tuple[Any, Any]]:
        """This rank's (images, masks) batches, reshuffled per epoch and sharded as DistributedSampler does."""
        torch = require("torch", extra="compress", what="PyTorch")

        if self.train_images is None or self.train_masks is None:
            raise ConfigError("This step needs train_data: pass the segmentation training split's folder.")
        here = world()
        order = torch.randperm(len(self.train_masks), generator=torch.Generator().manual_seed(self.seed + epoch))
        if here.size > 1:
            order = torch.cat([order, order[: (-len(order)) % here.size]])[here.rank :: here.size]
        return ((self.train_images[chosen], self.train_masks[chosen].long())
                for chosen in order.split(max(self.batch_size // here.size, 1)) if len(chosen) > 1)

    def evaluate(self, module: Any) -> Any:
        """SegmentationMetrics on val of the deployable graph, decoded by the device's post-processing."""
        from ..train_segment import evaluate_segmenter

        return evaluate_segmenter(module, self.val, self.model.preprocess, self.model.segmentation,
                                  images=self.val_images, masks=self.val_masks)


def _open(kind: Any, path: str | Path, model: TrainedModel, ignore: int) -> Any:
    return kind.open(path, labels=model.labels, ignore_index=ignore)


def fit_segmenter(
    trainee: Any, *, data: SegmentationData, epochs: int, learning_rate: float, weight_decay: float,
    patience: int | None = None, on_epoch: EpochCallback | None = None, checkpoint: EpochCheckpoint | None = None,
) -> FitResult:
    """`fit` over the cached mask split, clipped gradients; val mIoU (with pixel accuracy) chooses the epoch."""

    def validate(trained: Any) -> dict[str, float]:
        metrics = data.evaluate(trained)
        return {"val_miou": metrics.miou, "val_pixel_accuracy": metrics.pixel_accuracy}

    return fit(trainee, batches=lambda epoch: data.batches(epoch=epoch), steps_per_epoch=data.steps_per_epoch(),
               validate=validate if data.val is not None else None, score_key="val_miou", epochs=epochs,
               learning_rate=learning_rate, weight_decay=weight_decay, patience=patience, clip_grad_norm=GRADIENT_CLIP,
               on_epoch=on_epoch, checkpoint=checkpoint)


def distill_segmenter(
    student: TrainedModel, teacher: TrainedModel, *, train_data: str | Path, val_data: str | Path,
    config: DistillConfig, on_epoch: EpochCallback | None = None, checkpoint: EpochCheckpoint | None = None,
) -> tuple[TrainedModel, DistillReport]:
    """`distill` for task segment (dispatched from it); the inputs are not modified."""
    torch = require("torch", extra="compress", what="PyTorch")
    from .trainees import SegmenterDistillation, SegmenterLoss

    check_segmenter(student)
    check_segmenter(teacher)
    if student.input_size != teacher.input_size or student.segmentation != teacher.segmentation \
            or list(student.labels) != list(teacher.labels):
        raise ConfigError("Student and teacher segmenters must share input size, labels and mask decoding to distill.")
    if config.feature_layers:
        raise ConfigError(
            "feature_layers names classifier layers; a segmenter imitates the features that feed its class-score "
            "layers automatically: leave feature_layers empty and weigh them with feature_weight."
        )
    uses_teacher = config.alpha > 0 or config.feature_weight > 0  # as for detectors: no feature_layers to name
    started = time.perf_counter()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed + world().rank)
        data = SegmentationData.open(student, train_data=train_data, val_data=val_data, batch_size=config.batch_size,
                                     seed=config.seed)
        module = copy.deepcopy(student.module)
        before, teacher_metrics = data.evaluate(module), data.evaluate(teacher.module)
        ignore = student.segmentation.ignore_index
        trainee = (SegmenterDistillation(module, teacher.module, class_weights=data.class_weights, ignore_index=ignore,
                                         temperature=config.temperature, alpha=config.alpha,
                                         feature_weight=config.feature_weight, input_size=student.input_size)
                   if uses_teacher else SegmenterLoss(module, class_weights=data.class_weights, ignore_index=ignore))
        try:
            result = fit_segmenter(trainee, data=data, epochs=config.epochs, learning_rate=config.learning_rate,
                                   weight_decay=config.weight_decay, patience=config.patience, on_epoch=on_epoch,
                                   checkpoint=checkpoint)
        finally:
            trainee.close()
    best = result.history[result.best_epoch - 1]
    mode = "distill" if uses_teacher else "fine-tune"
    report = DistillReport(
        mode=mode, accuracy_before=before.miou, accuracy_after=best["val_miou"], teacher_accuracy=teacher_metrics.miou,
        best_epoch=result.best_epoch, epochs_run=len(result.history), stopped_early=result.stopped_early,
        seconds=time.perf_counter() - started, history=result.history, metric="mIoU",
        resumed_from_epoch=result.resumed_from_epoch,
    )
    how = (f"KD from {teacher.name} (pixel-wise KL T={config.temperature:g} ×{config.alpha:g}, features "
           f"×{config.feature_weight:g})" if uses_teacher else "fine-tuned on masks")
    notes = dict(student.notes)
    notes[mode] = (
        f"{how}, {report.epochs_run}/{config.epochs} epochs (best {report.best_epoch}): val mIoU "
        f"{report.accuracy_before:.4f} → {report.accuracy_after:.4f} (teacher {report.teacher_accuracy:.4f})"
    )
    distilled = TrainedModel(
        module=module, labels=list(student.labels), preprocess=student.preprocess, architecture=student.architecture,
        name=student.name, notes=notes, task=Task.SEGMENT, segmentation=student.segmentation,
    )
    return distilled, report
