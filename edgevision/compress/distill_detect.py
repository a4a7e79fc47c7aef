"""Distillation and fine-tuning for detectors (fcos_digits): the original detector teaches the pruned one.

The loss per batch is

    FCOS ground-truth loss (torchvision's: focal classification + GIoU boxes + centre-ness BCE)
    + feature_weight · channel-normalised MSE between student and teacher FPN outputs
    + alpha · head-output distillation.

Feature imitation: each FPN level of the student goes through a learned 1×1 adapter to the teacher's
width (identity where widths match), then both maps are standardised per image and channel over H×W
(zero mean, unit variance; the "channel-normalised" MSE that PKD showed to be simple and strong) and
compared by MSE, averaged over levels. The adapters train with the student and are discarded after.

Head distillation (what we chose, kept simple): student and teacher share the anchor grid, so their
head outputs align anchor by anchor. Class logits: BCE of the student's logits toward the teacher's
sigmoid scores, summed over classes and averaged over anchors. Where the teacher is confident (its
score sqrt(sigmoid(class) · sigmoid(centre-ness)) ≥ `TEACHER_CONFIDENT`): L1 between the box
regression codes (left/top/right/bottom in anchor sizes, what the boxes decode from) and BCE of the
student's centre-ness toward the teacher's, averaged over those anchors.

Fine-tune mode (`DistillConfig.as_fine_tune()`: alpha 0, feature_weight 0) is the same loop with the
ground-truth loss alone, so both use one budget and schedule. Val mAP50-95 (the deployable graph,
decoded as on the device) chooses the epoch; the teacher runs in eval mode without gradients.
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
from .trainees import DetectorDistillation, DetectorLoss

GRADIENT_CLIP = 10.0  # as train_detect


def check_trainable_detector(model: TrainedModel) -> None:
    """The training view these loops need: torchvision FCOS as `module.fcos` (edgevision's fcos_digits)."""
    if model.task is not Task.DETECT or not hasattr(model.module, "fcos"):
        raise ConfigError(
            f"{model.name}: training a detector here needs edgevision's fcos_digits (a module with a torchvision "
            "FCOS training view `.fcos`); other detectors can be pruned without data (importance l1/l2, no "
            "fine-tuning) or trained with their own tools."
        )


@dataclass
class DetectionData:
    """A detector's COCO splits, letterboxed once and cached as tensors (as train_detect does)."""

    model: TrainedModel
    train_images: Any | None  # N×3×H×W float32
    train_targets: list[dict[str, Any]] | None  # FCOS targets in model-input pixels
    val: Any | None  # CocoDetections
    val_images: Any | None
    batch_size: int
    seed: int

    @classmethod
    def open(cls, model: TrainedModel, *, train_data: str | Path | None, val_data: str | Path | None,
             batch_size: int, seed: int) -> DetectionData:
        from ..data.coco import CocoDetections
        from ..train_detect import cache_images, cache_training_set

        train_images = train_targets = val = val_images = None
        if train_data is not None:
            train_images, train_targets = cache_training_set(
                CocoDetections.open(train_data, labels=model.labels), model.preprocess
            )
        if val_data is not None:
            val = CocoDetections.open(val_data, labels=model.labels)
            val_images = cache_images(val, model.preprocess)
        return cls(model, train_images, train_targets, val, val_images, batch_size, seed)

    def steps_per_epoch(self) -> int:
        """How many batches `batches` yields on this rank."""
        size = world().size
        images = -(-len(self.train_targets or []) // size)  # this rank's share, padded as in `batches`
        return -(-images // max(self.batch_size // size, 1))

    def batches(self, *, epoch: int = 0) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
        """This rank's (images, targets) batches of the training split, reshuffled per epoch (seeded by seed + epoch).

        As DistributedSampler: the epoch's order is padded to a multiple of the world size and rank r takes
        every size-th image from r, in batches of batch_size ÷ size, so every rank runs the same number of
        steps and the ranks' batches together are the single-process batches.
        """
        torch = require("torch", extra="compress", what="PyTorch")

        if self.train_images is None or self.train_targets is None:
            raise ConfigError("This step needs train_data: pass the COCO training split's folder.")
        here = world()
        order = torch.randperm(len(self.train_targets), generator=torch.Generator().manual_seed(self.seed + epoch))
        if here.size > 1:
            order = torch.cat([order, order[: (-len(order)) % here.size]])[here.rank :: here.size]
        images, targets = self.train_images, self.train_targets
        return ((images[chosen], [targets[i] for i in chosen.tolist()])
                for chosen in order.split(max(self.batch_size // here.size, 1)))

    def evaluate(self, module: Any) -> Any:
        """COCO mAP on val of the deployable graph, decoded by the device's post-processing (DetectionMetrics)."""
        from ..train_detect import evaluate_detector

        return evaluate_detector(module, self.val, self.model.preprocess, self.model.detection, images=self.val_images)


def fit_detector(
    trainee: Any, *, data: DetectionData, epochs: int, learning_rate: float, weight_decay: float,
    patience: int | None = None, on_epoch: EpochCallback | None = None, checkpoint: EpochCheckpoint | None = None,
) -> FitResult:
    """`fit` for a detector over the cached COCO split, clipped gradients; val mAP50-95 (with mAP50) chooses the epoch."""

    def validate(trained: Any) -> dict[str, float]:
        metrics = data.evaluate(trained)
        return {"val_map50_95": metrics.map50_95, "val_map50": metrics.map50}

    return fit(trainee, batches=lambda epoch: data.batches(epoch=epoch), steps_per_epoch=data.steps_per_epoch(),
               validate=validate if data.val is not None else None, score_key="val_map50_95", epochs=epochs,
               learning_rate=learning_rate, weight_decay=weight_decay, patience=patience, clip_grad_norm=GRADIENT_CLIP,
               on_epoch=on_epoch, checkpoint=checkpoint)


def distill_detector(
    student: TrainedModel, teacher: TrainedModel, *, train_data: str | Path, val_data: str | Path,
    config: DistillConfig, on_epoch: EpochCallback | None = None, checkpoint: EpochCheckpoint | None = None,
) -> tuple[TrainedModel, DistillReport]:
    """`distill` for task detect (dispatched from it); the inputs are not modified."""
    torch = require("torch", extra="compress", what="PyTorch")

    check_trainable_detector(student)
    check_trainable_detector(teacher)
    if student.input_size != teacher.input_size or student.detection != teacher.detection:
        raise ConfigError("Student and teacher detectors must share input size and output decoding to distill.")
    if config.feature_layers:
        raise ConfigError(
            "feature_layers names classifier layers; a detector imitates its FPN outputs (the features that "
            "feed the head) automatically: leave feature_layers empty and weigh them with feature_weight."
        )
    uses_teacher = config.alpha > 0 or config.feature_weight > 0
    started = time.perf_counter()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed + world().rank)
        data = DetectionData.open(student, train_data=train_data, val_data=val_data, batch_size=config.batch_size,
                                  seed=config.seed)
        module = copy.deepcopy(student.module)
        before, teacher_metrics = data.evaluate(module), data.evaluate(teacher.module)
        trainee = (DetectorDistillation(module, teacher.module, alpha=config.alpha, feature_weight=config.feature_weight,
                                        input_size=student.input_size)
                   if uses_teacher else DetectorLoss(module))
        fit = fit_detector(trainee, data=data, epochs=config.epochs, learning_rate=config.learning_rate,
                           weight_decay=config.weight_decay, patience=config.patience, on_epoch=on_epoch,
                           checkpoint=checkpoint)
    best = fit.history[fit.best_epoch - 1]
    mode = "distill" if uses_teacher else "fine-tune"
    report = DistillReport(
        mode=mode, accuracy_before=before.map50_95, accuracy_after=best["val_map50_95"],
        teacher_accuracy=teacher_metrics.map50_95, best_epoch=fit.best_epoch, epochs_run=len(fit.history),
        stopped_early=fit.stopped_early, seconds=time.perf_counter() - started, history=fit.history,
        metric="mAP50-95", map50_before=before.map50, map50_after=best["val_map50"], teacher_map50=teacher_metrics.map50,
        resumed_from_epoch=fit.resumed_from_epoch,
    )
    how = (f"KD from {teacher.name} (FPN features ×{config.feature_weight:g}, head outputs ×{config.alpha:g})"
           if uses_teacher else "fine-tuned on labels")
    notes = dict(student.notes)
    notes[mode] = (
        f"{how}, {report.epochs_run}/{config.epochs} epochs (best {report.best_epoch}): val mAP50-95 "
        f"{report.accuracy_before:.4f} → {report.accuracy_after:.4f} (teacher {report.teacher_accuracy:.4f})"
    )
    distilled = TrainedModel(
        module=module, labels=list(student.labels), preprocess=student.preprocess, architecture=student.architecture,
        name=student.name, notes=notes, task=Task.DETECT, detection=student.detection,
    )
    return distilled, report
