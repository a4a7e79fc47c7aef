"""Train the demo detector (`fcos_digits`) from random init on COCO splits, on a CPU, in minutes.

Every image goes through the device's own letterbox preprocessing (`preprocess_image`) once and is
cached as a tensor, and its boxes through the same letterbox geometry: the model trains on exactly
what a device feeds it. Val chooses the epoch, by mAP50 of the deployable graph's raw output decoded
with the device's numpy post-processing; test is measured once, at the end, and chooses nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import PreprocessSpec
from .data.coco import CocoDetections
from .data.detection import DetectionSplits
from .errors import ConfigError
from .types import ResizePolicy, Task

#: The defaults the demo trains with (measured on 2 cores: see the README's detection section).
DEFAULT_INPUT_SIZE = (160, 192)  # (height, width): 240×320 frames letterbox to 144×192, 8 rows of padding each side
DEFAULT_EPOCHS = 10
#: Epochs of backbone warm-up as a digit classifier on the training split's own boxes (see `_warm_up_backbone`).
DEFAULT_WARMUP_EPOCHS = 3
WARMUP_CROP = 32  # pixels: the digits' size in the input (14–48 px) and the classification demo's
DEFAULT_BATCH_SIZE = 16
DEFAULT_LEARNING_RATE = 1e-2
WEIGHT_DECAY = 1e-4
GRADIENT_CLIP = 10.0
EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class DetectorProgress:
    """One progress event: a training step (`val_map50` None) or the end of an epoch (with its val mAP50)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # this step's total loss; at epoch end the epoch's mean
    val_map50: float | None = None


ProgressCallback = Callable[[DetectorProgress], None]


@dataclass(frozen=True)
class DetectorTrainingReport:
    """What training did. `val_map50[i]` is epoch i + 1's; test figures are the chosen checkpoint's, measured once."""

    checkpoint: Path
    epochs: int
    seconds: float
    val_map50: tuple[float, ...]
    best_epoch: int  # 1-based: the epoch whose weights were kept
    test_map50_95: float
    test_map50: float
    images: dict[str, int]  # per split
    input_size: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.val_map50) != self.epochs or not 1 <= self.best_epoch <= self.epochs:
            raise ConfigError(f"best_epoch {self.best_epoch} / val_map50 {self.val_map50} do not fit {self.epochs} epochs.")


def letterbox_spec(input_size: tuple[int, int]) -> PreprocessSpec:
    """The detector's preprocessing: letterbox to (height, width), stride 32, ImageNet mean/std, RGB."""
    from .detectors import STRIDES

    return PreprocessSpec(resize=ResizePolicy.LETTERBOX, size=tuple(input_size), stride=max(STRIDES))


def train_detector(
    splits: DetectionSplits,
    output_path: str | Path,
    *,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
) -> DetectorTrainingReport:
    """Train fcos_digits on splits.train, keep the best epoch by val mAP50, measure test once, save a checkpoint."""
    import torch

    from .detectors import ARCHITECTURE, build_fcos_detector, detection_spec
    from .model import TrainedModel

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ConfigError(f"epochs ({epochs}) and batch_size ({batch_size}) must be at least 1 and lr ({lr}) > 0.")
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    spec = letterbox_spec(input_size)
    train = CocoDetections.open(splits.train, labels=splits.labels)
    val = CocoDetections.open(splits.val, labels=splits.labels)
    test = CocoDetections.open(splits.test, labels=splits.labels)
    train_images, train_targets = cache_training_set(train, spec)
    val_images = cache_images(val, spec)

    model = build_fcos_detector(num_classes=len(splits.labels), input_size=spec.size)
    if warmup_epochs:
        _warm_up_backbone(model, train_images, train_targets, classes=len(splits.labels), epochs=warmup_epochs, seed=seed)
    model.to(memory_format=torch.channels_last)  # measured ~25 % faster training steps on CPU (oneDNN)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    steps = -(-len(train_targets) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    decoding = detection_spec()
    history: list[float] = []
    best_state: dict[str, Any] | None = None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_targets), generator=generator)
        losses = []
        for step in range(steps):
            chosen = order[step * batch_size : (step + 1) * batch_size]
            loss_parts = model.fcos(list(train_images[chosen]), [train_targets[i] for i in chosen.tolist()])
            loss = sum(loss_parts.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(DetectorProgress(epoch, epochs, step + 1, steps, losses[-1]))
        val_map50 = evaluate_detector(model, val, spec, decoding, images=val_images).map50
        if not history or val_map50 > max(history):
            best_state = copy.deepcopy(model.state_dict())
        history.append(val_map50)
        if progress is not None:
            progress(DetectorProgress(epoch, epochs, steps, steps, float(np.mean(losses)), val_map50))

    assert best_state is not None  # epochs >= 1
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format).eval()
    test_metrics = evaluate_detector(model, test, spec, decoding)
    trained = TrainedModel(
        module=model, labels=list(splits.labels), preprocess=spec, architecture=ARCHITECTURE, name="digits_detector",
        task=Task.DETECT, detection=decoding,
    )
    checkpoint = trained.save(output_path)
    return DetectorTrainingReport(
        checkpoint=checkpoint, epochs=epochs, seconds=time.perf_counter() - started, val_map50=tuple(history),
        best_epoch=1 + int(np.argmax(history)), test_map50_95=test_metrics.map50_95, test_map50=test_metrics.map50,
        images={"train": len(train), "val": len(val), "test": len(test)}, input_size=tuple(spec.size),
    )


@dataclass(frozen=True)
class FCOSPass:
    """One forward of an FCOS detector's training view: FPN outputs, raw head outputs, and (with targets) losses."""

    features: list[Any]  # FPN outputs, stride 8/16/32, each N×C×h×w: what feeds the head
    head: dict[str, Any]  # cls_logits N×A×K, bbox_regression N×A×4, bbox_ctrness N×A×1 (all levels concatenated)
    losses: dict[str, Any] | None


def fcos_pass(model: Any, images: Any, targets: list[dict[str, Any]] | None = None) -> FCOSPass:
    """torchvision FCOS's training forward, step by step, for an already letterboxed batch N×3×H×W.

    The same computation as `model.fcos(list(images), targets)` in train mode (its transform is a no-op
    here), but it also returns the features and head outputs distillation needs, and it computes the
    loss in either mode: Taylor importance wants loss gradients with BatchNorm in eval mode.
    """
    from torchvision.models.detection.image_list import ImageList

    fcos = model.fcos
    features = list(fcos.backbone(images).values())
    head = fcos.head(features)
    losses = None
    if targets is not None:
        height, width = images.shape[-2:]
        anchors = fcos.anchor_generator(ImageList(images, [(height, width)] * len(images)), features)
        losses = fcos.compute_loss(targets, head, anchors, [f.shape[2] * f.shape[3] for f in features])
    return FCOSPass(features=features, head=head, losses=losses)


def evaluate_detector(module, dataset: CocoDetections, spec: PreprocessSpec, decoding, *, images=None):
    """COCO mAP of the deployable graph on `dataset`, decoded by the device's post-processing (numpy + OpenCV NMS).

    `images`: the data set's preprocessed tensors when already cached. Returns `DetectionMetrics`.
    """
    import torch

    from .metrics.detection import EVAL_SCORE_THRESHOLD, coco_map
    from .preprocess import letterbox_geometry
    from .tasks.detect import decode_detections

    if images is None:
        images = cache_images(dataset, spec)
    was_training = module.training
    module.eval()
    detections = []
    with torch.inference_mode():
        for start in range(0, len(dataset), EVAL_BATCH_SIZE):
            raw = module(images[start : start + EVAL_BATCH_SIZE]).numpy()
            for offset, one in enumerate(raw):
                target = dataset.targets[start + offset]
                box = letterbox_geometry(target.height, target.width, spec)
                detections.append(decode_detections(one, decoding, box, tuple(spec.size), dataset.labels,
                                                    score_threshold=EVAL_SCORE_THRESHOLD))
    module.train(was_training)
    return coco_map(dataset, detections)


def cache_images(dataset: CocoDetections, spec: PreprocessSpec):
    """Every image of `dataset` through the device preprocessing, as one N×3×H×W float32 tensor."""
    import torch

    from .preprocess import preprocess_image

    batch = np.empty((len(dataset), 3, *spec.size), np.float32)
    for index in range(len(dataset)):
        batch[index] = preprocess_image(dataset.image(index), spec).transpose(2, 0, 1)
    return torch.from_numpy(batch)


def cache_training_set(dataset: CocoDetections, spec: PreprocessSpec) -> tuple[Any, list[dict[str, Any]]]:
    """Images as a tensor plus FCOS targets (boxes in model-input pixels, through the letterbox, 0-based labels)."""
    import torch

    from .preprocess import letterbox_geometry

    targets = []
    height, width = spec.size
    for target in dataset.targets:
        boxes = letterbox_geometry(target.height, target.width, spec).to_input(target.boxes_xyxy)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        targets.append({"boxes": torch.from_numpy(boxes[keep].copy()),
                        "labels": torch.from_numpy(target.class_ids[keep].copy())})
    return cache_images(dataset, spec), targets


def _warm_up_backbone(model: Any, images: Any, targets: list[dict[str, Any]], *, classes: int, epochs: int,
                      seed: int) -> None:
    """Teach the backbone the digits first: classify each training box's crop, then detection starts from there.

    Telling the ten digits apart is what a few minutes of detection training learn worst (class-agnostic
    mAP50 runs far ahead of per-class); a classifier on the same backbone, fed 32 px crops of the
    training split's own boxes (letterboxed, as the detector sees them), learns it in seconds. This is the
    transfer learning the issue allows (from digit classification), on the training split only.
    """
    import torch
    import torch.nn.functional as F

    crops, labels = [], []
    for image, target in zip(images, targets, strict=True):
        for (x1, y1, x2, y2), label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            pad = 0.1 * max(x2 - x1, y2 - y1)
            top, left = max(0, int(y1 - pad)), max(0, int(x1 - pad))
            window = image[:, top : int(y2 + pad) + 1, left : int(x2 + pad) + 1]
            crops.append(F.interpolate(window[None], size=(WARMUP_CROP, WARMUP_CROP), mode="bilinear",
                                       align_corners=False)[0])
            labels.append(label)
    crops, labels = torch.stack(crops).contiguous(memory_format=torch.channels_last), torch.tensor(labels)
    body = model.fcos.backbone.body.eval()
    with torch.no_grad():
        last = body(crops[:2])
    classifier = torch.nn.Linear(list(last.values())[-1].shape[1], classes)
    optimizer = torch.optim.AdamW([*body.parameters(), *classifier.parameters()], lr=3e-3, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed + 1)
    body.train()
    for _ in range(epochs):
        for chosen in torch.randperm(len(labels), generator=generator).split(64):
            if len(chosen) < 2:  # batch norm needs two samples
                continue
            features = list(body(crops[chosen]).values())[-1].mean(dim=(2, 3))
            loss = F.cross_entropy(classifier(features), labels[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def describe(report: DetectorTrainingReport) -> str:
    """One line for logs and the CLI."""
    curve = ", ".join(f"{m:.3f}" for m in report.val_map50)
    return (f"{report.epochs} epochs in {report.seconds:.0f} s; val mAP50 per epoch [{curve}], kept epoch "
            f"{report.best_epoch}; test mAP50-95 {report.test_map50_95:.3f}, mAP50 {report.test_map50:.3f}")
