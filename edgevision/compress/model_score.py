"""The torch model's score on a split, by task: top-1 for a classifier, COCO mAP for a detector, mIoU for a segmenter.

Every compression stage (the original, pruned, distilled model) is scored the same way, so the
accuracy budget and the compress report follow the bundle's task like every other stage does.
Val scores choose (the budget); test scores report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..model import TrainedModel
from ..types import Task

#: The score each task's budget and report use first; the other figures ride along in `extras`.
PRIMARY_METRIC = {Task.CLASSIFY: "top-1", Task.DETECT: "mAP50-95", Task.SEGMENT: "mIoU"}


@dataclass(frozen=True)
class ModelScore:
    """`value` is the task's primary metric (a fraction in 0..1); `extras` e.g. {"mAP50": 0.81}."""

    metric: str
    value: float
    extras: dict[str, float] = field(default_factory=dict)


def score_model(model: TrainedModel, split: Path) -> ModelScore:
    """Score `model` (torch, in eval mode, the training-side preprocessing) on one split folder."""
    if model.task is Task.SEGMENT:
        from ..data.masks import MaskFolder
        from ..train_segment import evaluate_segmenter

        folder = MaskFolder.open(split, labels=model.labels, ignore_index=model.segmentation.ignore_index)
        metrics = evaluate_segmenter(model.module, folder, model.preprocess, model.segmentation)
        return ModelScore(PRIMARY_METRIC[Task.SEGMENT], metrics.miou, {"pixel accuracy": metrics.pixel_accuracy})
    if model.task is Task.DETECT:
        from ..data.coco import CocoDetections
        from ..train_detect import evaluate_detector

        dataset = CocoDetections.open(split, labels=model.labels)
        metrics = evaluate_detector(model.module, dataset, model.preprocess, model.detection)
        return ModelScore(PRIMARY_METRIC[Task.DETECT], metrics.map50_95, {"mAP50": metrics.map50})
    return ModelScore(PRIMARY_METRIC[Task.CLASSIFY], top1(model, split))


def top1(model: TrainedModel, split: Path) -> float:
    """Top-1 of the torch model on an ImageFolder, through the training-side eval transform."""
    from torch.utils.data import DataLoader

    from ..data.folder import ImageFolder
    from ..data.transforms import TorchImageFolder, eval_transform
    from ..train import evaluate_torch

    folder = ImageFolder.open(split, labels=model.labels)
    return evaluate_torch(model.module, DataLoader(TorchImageFolder(folder, eval_transform(model.preprocess)), batch_size=128))


def format_score(value: float, metric: str) -> str:
    """Top-1 as a percentage; mAP as the 0..1 number detection papers print."""
    return f"{value:.2%}" if metric == "top-1" else f"{value:.3f}"


def format_drop(drop: float, metric: str) -> str:
    """A loss in points either way: "1.20 pt of top-1", "1.20 pt of mAP50-95" (0.012)."""
    return f"{drop * 100:.2f} pt of {metric}"
