"""The segmenter and bundles behind `make bench`'s segmentation section.

The demo segmenter (LR-ASPP on MobileNetV3, `edgevision.train_segment.train_segmenter`) is trained at its
deployment size (160×192, letterboxed) on the masks of the generated digits-on-photos splits (the
detector's images), seeded, and cached in the work directory (or taken from `--segmenter-checkpoint`).
edgevision full prunes it (`prune`, a MAC target, the class-score layers kept), distils it from the
original (`distill`: pixel-wise KL + feature imitation) and quantises all of it to INT8. Every bundle is
checked against its torch model on the validation split; the train split calibrates; the test split is
measured by the caller and chooses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark_models import BuiltBundles, Log
from benchmark_task_models import (
    PARITY_IMAGES,
    CompressPlan,
    PreparedModel,
    TaskModels,
    build_task_bundles,
    prepare_model,
    task_variants,
)

from edgevision.data.detection import DetectionSplits
from edgevision.export import ParityConfig
from edgevision.model import TrainedModel


@dataclass(frozen=True, kw_only=True)
class SegmentPlan(CompressPlan):
    """How the segmenter is trained and compressed for the benchmark, and the issue's targets."""

    title: str = "Digits segmenter (LR-ASPP, MobileNetV3)"
    train_epochs: int = 16  # train_segment.DEFAULT_EPOCHS, what the demo trains
    distill_batch_size: int = 16  # train_segment's batch size
    #: AdamW + cosine from 2e-3: a fifth of training's 1e-2 peak, as the detector's fine-tuning (its 2e-3).
    distill_learning_rate: float = 2e-3
    #: Weight of the pixel-wise KL against (1 − alpha) of the class-weighted cross-entropy on the masks: 0.5 keeps
    #: the masks' thin digit strokes in the loss while the teacher's soft boundaries teach.
    distill_alpha: float = 0.5
    distill_feature_weight: float = 1.0  # channel-normalised MSE on the features feeding the class-score layers
    max_int8_drop_pt: float = 1.0  # edgevision INT8 → OpenVINO vs PyTorch eager FP32
    max_full_drop_pt: float = 1.5
    min_full_speedup_vs_oneliner: float = 2.0  # end to end, paired median


VARIANTS = task_variants("int8", "edgevision INT8")
FULL_CANDIDATES = tuple(v.key for v in VARIANTS if v.compressed)
#: INT8 bundles must agree with their torch model's own masks at this mIoU on the validation images to be
#: benchmarked: a check that the graph is intact, low on purpose (the default INT8 floor is 0.9) so a lossy INT8
#: bundle is measured and its loss shows in the mIoU columns rather than as a missing row.
INT8_BENCH_MIOU = 0.5


def _train(splits: DetectionSplits, path: Path, epochs: int, seed: int) -> Any:
    from edgevision.train_segment import train_segmenter

    return train_segmenter(splits, path, epochs=epochs, seed=seed, threads=2)


def _miou_val_test(model: TrainedModel, splits: DetectionSplits) -> dict[str, float]:
    """mIoU and pixel accuracy of the torch model on val (which chose the epoch) and test (which chose nothing)."""
    from edgevision.data.masks import MaskFolder
    from edgevision.train_segment import evaluate_segmenter

    found = {}
    for name in ("val", "test"):
        folder = MaskFolder.open(getattr(splits, name), labels=model.labels,
                                 ignore_index=model.segmentation.ignore_index)
        metrics = evaluate_segmenter(model.module, folder, model.preprocess, model.segmentation)
        found |= {f"{name}_miou": metrics.miou, f"{name}_pixel_accuracy": metrics.pixel_accuracy}
    return found


SEGMENTER = TaskModels(noun="segmenter", metric="mIoU", split_file="labels.txt", kept="class-score layers",
                       train=_train, score=_miou_val_test)


def prepare_segmenter(plan: SegmentPlan, *, work: Path, checkpoint: Path | None, data: Path | None, fresh: bool,
                      log: Log) -> PreparedModel:
    """The splits, the trained segmenter (given, cached or trained now) and its pruned + distilled copy."""
    return prepare_model(plan, SEGMENTER, work=work, checkpoint=checkpoint, data=data, fresh=fresh, log=log)


def build_segment_bundles(prepared: PreparedModel, out: Path, *, calibration_images: int, log: Log) -> BuiltBundles:
    """Every variant at the segmenter's deployment size (edgevision INT8: every layer quantised, a segmenter has no
    head to keep in float); a variant that cannot be built is listed with why."""
    val = prepared.splits.val

    def describe(report: Any) -> tuple[dict, str]:
        return ({"mask_miou": report.mask_miou, "max_abs_diff": report.max_abs_diff, "data": report.data},
                (f"mIoU against the torch model's masks {report.mask_miou:.3f} on "
                 f"{Path(str(report.data).split(' ')[0]).name}"))

    return build_task_bundles(
        prepared, out, VARIANTS, calibration_images=calibration_images, head=None, describe=describe, log=log,
        float_parity=ParityConfig(data=val, max_images=PARITY_IMAGES),
        int8_parity=ParityConfig(data=val, max_images=PARITY_IMAGES, min_mask_miou=INT8_BENCH_MIOU))
