"""Train the demo segmenter (`lraspp_digits`) from random init on the generated masks, on a CPU, in minutes.

Every image goes through the device's own letterbox preprocessing (`preprocess_image`) once and is cached
as a tensor, and its mask through the same letterbox geometry (nearest resize; the padding is
`ignore_index`, which scores nothing): the model trains on exactly what a device feeds it. Val chooses the
epoch, by mIoU of the deployable graph's output decoded with the device's numpy post-processing and
compared with the annotated mask on the ORIGINAL frame — the figure a device reports; test is measured
once, at the end, and chooses nothing.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import opencv
from .bundle import PreprocessSpec, SegmentationSpec
from .data.detection import DetectionSplits
from .data.masks import MaskFolder
from .errors import ConfigError, DataError
from .metrics.segmentation import ConfusionMatrix, SegmentationMetrics
from .types import ResizePolicy, Task

cv2 = opencv()

#: The defaults the demo trains with (chosen on val; measured on 2 shared cores).
DEFAULT_INPUT_SIZE = (160, 192)  # (height, width): 240×320 frames letterbox to 144×192, as the detector's
DEFAULT_EPOCHS = 16
DEFAULT_BATCH_SIZE = 16
DEFAULT_LEARNING_RATE = 1e-2
#: Class weights ∝ (pixel share)^-power over the training masks: 0 plain cross-entropy, 0.5 inverse square root.
#: Digits are ~0.6 % of the pixels each, background ~94 %.
DEFAULT_CLASS_WEIGHT_POWER = 0.25
#: Epochs of backbone warm-up as a digit classifier on crops around the training masks' digits (`_warm_up_backbone`);
#: each costs about a third of a segmentation epoch. 6 over 3: val mIoU 0.630 against 0.610 (16 epochs).
DEFAULT_WARMUP_EPOCHS = 6
WARMUP_CROP = 32  # pixels: the digits' size in the input (14–48 px), as the detector's warm-up
WARMUP_LEARNING_RATE = 1e-2
WARMUP_BATCH_SIZE = 64
#: Each training batch is resized by one factor drawn from [1 - jitter, 1 + jitter], then cropped or padded back.
#: Measured neutral on val at 12 epochs (0.616 with and without) while halving the train/val loss gap: kept as the
#: regulariser for longer runs.
DEFAULT_SCALE_JITTER = 0.2
WEIGHT_DECAY = 0.05  # AdamW's decoupled decay; 0.05 over 1e-4: val mIoU 0.624 against 0.616 (12 epochs)
GRADIENT_CLIP = 10.0
EVAL_BATCH_SIZE = 64


@dataclass(frozen=True)
class SegmenterProgress:
    """One progress event: a training step (`val_miou` None) or the end of an epoch (with its val mIoU)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # 1-based, within the epoch
    steps: int
    loss: float  # this step's loss; at epoch end the epoch's mean
    val_miou: float | None = None


ProgressCallback = Callable[[SegmenterProgress], None]


@dataclass(frozen=True)
class SegmenterTrainingReport:
    """What training did. `val_miou[i]` is epoch i + 1's; test figures are the kept epoch's, measured once."""

    checkpoint: Path
    epochs: int
    seconds: float
    val_miou: tuple[float, ...]
    best_epoch: int  # 1-based: the epoch whose weights were kept
    test_miou: float
    test_pixel_accuracy: float
    test_class_iou: tuple[float, ...]  # per label (background first); NaN: the class never occurred
    labels: tuple[str, ...]
    images: dict[str, int]  # per split
    input_size: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.val_miou) != self.epochs or not 1 <= self.best_epoch <= self.epochs:
            raise ConfigError(f"best_epoch {self.best_epoch} / val_miou {self.val_miou} do not fit {self.epochs} epochs.")
        if not all(0.0 <= v <= 1.0 for v in (*self.val_miou, self.test_miou, self.test_pixel_accuracy)):
            raise ConfigError(f"mIoU and pixel accuracy are fractions in [0, 1]; got val {self.val_miou}, test "
                              f"{self.test_miou}, pixel accuracy {self.test_pixel_accuracy}.")
        if len(self.test_class_iou) != len(self.labels):
            raise ConfigError(f"test_class_iou has {len(self.test_class_iou)} entries for {len(self.labels)} labels.")


def letterbox_spec(input_size: tuple[int, int]) -> PreprocessSpec:
    """The segmenter's preprocessing: letterbox to (height, width), ImageNet mean/std, RGB."""
    from .segmenters import INPUT_MULTIPLE, _as_size

    return PreprocessSpec(resize=ResizePolicy.LETTERBOX, size=_as_size(input_size), stride=INPUT_MULTIPLE)


def train_segmenter(
    splits: DetectionSplits,
    output_path: str | Path,
    *,
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    lr: float = DEFAULT_LEARNING_RATE,
    class_weight_power: float = DEFAULT_CLASS_WEIGHT_POWER,
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS,
    scale_jitter: float = DEFAULT_SCALE_JITTER,
    seed: int = 0,
    threads: int | None = None,
    progress: ProgressCallback | None = None,
) -> SegmenterTrainingReport:
    """Train lraspp_digits on the masks of splits.train, keep the best epoch by val mIoU, measure test once, save."""
    import torch

    from .model import TrainedModel
    from .segment_loss import SegmentationLoss, class_weights, rescale_batch
    from .segmenters import ARCHITECTURE, build_lraspp_segmenter, segmentation_spec

    if (epochs < 1 or warmup_epochs < 0 or batch_size < 2 or not lr > 0 or not 0.0 <= class_weight_power <= 1.0
            or not 0.0 <= scale_jitter < 1.0):
        raise ConfigError(
            f"epochs ({epochs}) must be at least 1, warmup_epochs ({warmup_epochs}) at least 0, batch_size ({batch_size}) "
            f"at least 2 (batch norm), lr ({lr}) > 0, class_weight_power ({class_weight_power}) in [0, 1] "
            f"(0: plain cross-entropy, 0.5: inverse square root of the pixel share) and scale_jitter ({scale_jitter}) "
            "in [0, 1)."
        )
    started = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    spec = letterbox_spec(input_size)
    decoding = segmentation_spec()
    train, val, test = (MaskFolder.open(path, ignore_index=decoding.ignore_index)
                        for path in (splits.train, splits.val, splits.test))
    labels = train.labels
    for split in (val, test):
        if split.labels != labels:
            raise DataError(f"{split.root / 'labels.txt'} lists {list(split.labels)} but the training split's lists "
                            f"{list(labels)}; every split must name the same classes in the same order.")
    train_images, train_masks = cache_training_set(train, spec)
    val_images, val_masks = cache_images(val, spec), [val.mask(i) for i in range(len(val))]

    model = build_lraspp_segmenter(num_classes=len(labels), input_size=spec.size)
    if warmup_epochs:
        _warm_up_backbone(model, train_images, train_masks, classes=len(labels), epochs=warmup_epochs, seed=seed,
                          ignore_index=decoding.ignore_index)
    model.to(memory_format=torch.channels_last)  # faster convolutions on CPU (oneDNN), as for the detector
    train_images = train_images.contiguous(memory_format=torch.channels_last)  # batches taken from it stay so
    weights = class_weights(train_masks, len(labels), power=class_weight_power, ignore_index=decoding.ignore_index)
    criterion = SegmentationLoss(weights, background=decoding.background_class or 0, ignore_index=decoding.ignore_index)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    steps = len(train_masks) // batch_size or 1  # full batches only: a batch of 1 breaks batch norm
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    history: list[float] = []
    best_state: dict[str, Any] | None = None
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_masks), generator=generator)
        losses = []
        for step in range(steps):
            chosen = order[step * batch_size : (step + 1) * batch_size]
            images, masks = train_images[chosen], train_masks[chosen]
            if scale_jitter:
                factor = 1.0 + scale_jitter * (2.0 * float(torch.rand(1, generator=generator)) - 1.0)
                images, masks = rescale_batch(images, masks, factor, ignore_index=decoding.ignore_index,
                                              generator=generator)
            loss = criterion(model, images, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(SegmenterProgress(epoch, epochs, step + 1, steps, losses[-1]))
        val_miou = evaluate_segmenter(model, val, spec, decoding, images=val_images, masks=val_masks).miou
        if not history or val_miou > max(history):
            best_state = copy.deepcopy(model.state_dict())
        history.append(val_miou)
        if progress is not None:
            progress(SegmenterProgress(epoch, epochs, steps, steps, float(np.mean(losses)), val_miou))

    assert best_state is not None  # epochs >= 1
    model.load_state_dict(best_state)
    model.to(memory_format=torch.contiguous_format).eval()
    test_metrics = evaluate_segmenter(model, test, spec, decoding)
    trained = TrainedModel(
        module=model, labels=list(labels), preprocess=spec, architecture=ARCHITECTURE, name="digits_segmenter",
        task=Task.SEGMENT, segmentation=decoding,
    )
    checkpoint = trained.save(output_path)
    return SegmenterTrainingReport(
        checkpoint=checkpoint, epochs=epochs, seconds=time.perf_counter() - started, val_miou=tuple(history),
        best_epoch=1 + int(np.argmax(history)), test_miou=test_metrics.miou,
        test_pixel_accuracy=test_metrics.pixel_accuracy, test_class_iou=test_metrics.class_iou, labels=tuple(labels),
        images={"train": len(train), "val": len(val), "test": len(test)}, input_size=tuple(spec.size),
    )


def evaluate_segmenter(module: Any, folder: MaskFolder, spec: PreprocessSpec, decoding: SegmentationSpec, *,
                       images: Any = None, masks: list[np.ndarray] | None = None) -> SegmentationMetrics:
    """mIoU and pixel accuracy of the deployable graph on `folder`, as a device measures them.

    The raw output goes through the device's post-processing (`edgevision.tasks.segment.decode_mask`:
    argmax, letterbox inverse, nearest resize to the frame) and is compared with the annotated mask on the
    original frame. `images` / `masks`: the split's preprocessed tensor and original masks, when cached.
    """
    import torch

    from .preprocess import letterbox_geometry
    from .tasks.segment import decode_mask

    if images is None:
        images = cache_images(folder, spec)
    matrix = ConfusionMatrix(len(folder.labels), ignore_index=decoding.ignore_index)
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        for start in range(0, len(folder), EVAL_BATCH_SIZE):
            raw = module(images[start : start + EVAL_BATCH_SIZE]).numpy()
            for offset, one in enumerate(raw):
                index = start + offset
                truth = masks[index] if masks is not None else folder.mask(index)
                box = letterbox_geometry(*truth.shape, spec)
                matrix.update(decode_mask(one, decoding, box, tuple(spec.size), folder.labels).class_ids, truth)
    module.train(was_training)
    return matrix.metrics()


def cache_images(folder: MaskFolder, spec: PreprocessSpec) -> Any:
    """Every image of `folder` through the device preprocessing, as one N×3×H×W float32 tensor."""
    import torch

    from .preprocess import preprocess_image

    batch = np.empty((len(folder), 3, *spec.size), np.float32)
    for index in range(len(folder)):
        batch[index] = preprocess_image(folder.image(index), spec).transpose(2, 0, 1)
    return torch.from_numpy(batch)


def letterbox_mask(mask: np.ndarray, spec: PreprocessSpec, *, ignore_index: int) -> np.ndarray:
    """A mask through the same letterbox as its image: nearest resize, the padding `ignore_index`."""
    from .preprocess import letterbox_geometry

    box = letterbox_geometry(*mask.shape, spec)
    new_h, new_w = box.resized
    if (new_h, new_w) != mask.shape:
        mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    bottom, right = spec.size[0] - new_h - box.top, spec.size[1] - new_w - box.left
    return cv2.copyMakeBorder(mask, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=ignore_index)


def cache_training_set(folder: MaskFolder, spec: PreprocessSpec) -> tuple[Any, Any]:
    """Images (N×3×H×W float32) and letterboxed masks (N×H×W uint8, padding = ignore_index) as tensors."""
    import torch

    masks = np.stack([letterbox_mask(folder.mask(i), spec, ignore_index=folder.ignore_index) for i in range(len(folder))])
    return cache_images(folder, spec), torch.from_numpy(masks)


def digit_crops(images: Any, masks: Any, *, ignore_index: int, size: int = WARMUP_CROP) -> tuple[Any, Any]:
    """size×size crops around each object in letterboxed masks, and their class ids (≥ 1; background is 0).

    An object is a connected blob of one class after a small dilation (a digit's strokes can touch only
    diagonally, or be cut by an overlapping digit); blobs under 12 pixels are left out.
    """
    import torch
    import torch.nn.functional as F

    kernel = np.ones((3, 3), np.uint8)
    crops, labels = [], []
    for image, mask in zip(images, masks.numpy(), strict=True):
        for class_id in np.unique(mask):
            if class_id in (0, ignore_index):
                continue
            blobs = cv2.dilate((mask == class_id).astype(np.uint8), kernel, iterations=2)
            count, _, stats, _ = cv2.connectedComponentsWithStats(blobs, connectivity=8)
            for left, top, width, height, area in stats[1:count]:
                if area < 12:
                    continue
                pad = int(0.1 * max(width, height))
                window = image[:, max(0, top - pad) : top + height + pad, max(0, left - pad) : left + width + pad]
                crops.append(F.interpolate(window[None], size=(size, size), mode="bilinear", align_corners=False)[0])
                labels.append(int(class_id))
    if not crops:
        return torch.zeros(0, 3, size, size), torch.zeros(0, dtype=torch.long)
    return torch.stack(crops), torch.tensor(labels)


def _warm_up_backbone(model: Any, images: Any, masks: Any, *, classes: int, epochs: int, seed: int,
                      ignore_index: int) -> None:
    """Teach the backbone the digits first: classify crops around the training masks' digits, then segment.

    Telling the ten digits apart is what a few minutes of per-pixel training learn worst (ink against
    background comes first); a classifier on the same backbone, fed 32 px crops of the training split's
    own digits (letterboxed, as the segmenter sees them), learns it in seconds — the same warm-up as the
    demo detector's, on the training split only.
    """
    import torch
    import torch.nn.functional as F

    crops, labels = digit_crops(images, masks, ignore_index=ignore_index)
    if len(labels) < 2:
        return
    crops = crops.contiguous(memory_format=torch.channels_last)
    body = model.lraspp.backbone.train()
    with torch.no_grad():
        channels = body(crops[:2])["high"].shape[1]
    classifier = torch.nn.Linear(channels, classes)
    optimizer = torch.optim.AdamW([*body.parameters(), *classifier.parameters()], lr=WARMUP_LEARNING_RATE,
                                  weight_decay=WEIGHT_DECAY)
    batches = -(-len(labels) // WARMUP_BATCH_SIZE)
    # one cycle: 0.91 val crop accuracy after 6 epochs, against 0.87 at a constant 3e-3 (measured)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=WARMUP_LEARNING_RATE, total_steps=epochs * batches,
                                                   pct_start=0.2)
    generator = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        for chosen in torch.randperm(len(labels), generator=generator).split(WARMUP_BATCH_SIZE):
            if len(chosen) < 2:  # batch norm needs two samples
                continue
            features = body(crops[chosen])["high"].mean(dim=(2, 3))
            loss = F.cross_entropy(classifier(features), labels[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


def describe(report: SegmenterTrainingReport) -> str:
    """One line for logs and the CLI."""
    curve = ", ".join(f"{m:.3f}" for m in report.val_miou)
    return (f"{report.epochs} epochs in {report.seconds:.0f} s; val mIoU per epoch [{curve}], kept epoch "
            f"{report.best_epoch}; test mIoU {report.test_miou:.3f}, pixel accuracy {report.test_pixel_accuracy:.3f}")
