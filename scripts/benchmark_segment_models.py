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

from benchmark_models import BuiltBundles, Log, build_each
from benchmark_task_models import CompressPlan, PreparedModel, TaskModels, build_oneliner, prepare_model

from edgevision.bundle import Bundle
from edgevision.data.detection import DetectionSplits
from edgevision.errors import CompressionError
from edgevision.export import ParityConfig, export
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


@dataclass(frozen=True)
class SegmentVariant:
    key: str
    label: str
    compressed: bool
    format: str
    precision: str
    how: str  # "export" | "oneliner" (nncf.quantize defaults) | "int8" (edgevision quantize, mIoU-guarded)


VARIANTS = (
    SegmentVariant("eager", "PyTorch eager FP32", False, "torch", "fp32", "export"),
    SegmentVariant("ort_fp32", "ONNX Runtime FP32", False, "onnx", "fp32", "export"),
    SegmentVariant("ov_fp32", "OpenVINO FP32", False, "openvino", "fp32", "export"),
    SegmentVariant("oneliner", "the one-liner: nncf.quantize defaults → OpenVINO INT8", False, "openvino", "int8",
                   "oneliner"),
    SegmentVariant("int8_openvino", "edgevision INT8 → OpenVINO", False, "openvino", "int8", "int8"),
    SegmentVariant("int8_onnxruntime", "edgevision INT8 → ONNX Runtime", False, "onnx", "int8", "int8"),
    SegmentVariant("int8_tflite", "edgevision INT8 → TFLite", False, "tflite", "int8", "int8"),
    SegmentVariant("full_openvino", "edgevision full → OpenVINO INT8", True, "openvino", "int8", "int8"),
    SegmentVariant("full_onnxruntime", "edgevision full → ONNX Runtime INT8", True, "onnx", "int8", "int8"),
    SegmentVariant("full_tflite", "edgevision full → TFLite INT8", True, "tflite", "int8", "int8"),
)
FULL_CANDIDATES = tuple(v.key for v in VARIANTS if v.compressed)
#: INT8 bundles must agree with their torch model's own masks at this mIoU on the validation images to be
#: benchmarked: a check that the graph is intact, low on purpose (the default INT8 floor is 0.9) so a lossy INT8
#: bundle is measured and its loss shows in the mIoU columns rather than as a missing row.
INT8_BENCH_MIOU = 0.5
#: Validation images each bundle's parity check reads (of 250): bounds the build time.
PARITY_IMAGES = 100


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
    """Every variant at the segmenter's deployment size; a variant that cannot be built is listed with why."""
    val, train = prepared.splits.val, prepared.splits.train
    float_parity = ParityConfig(data=val, max_images=PARITY_IMAGES)
    int8_parity = ParityConfig(data=val, max_images=PARITY_IMAGES, min_mask_miou=INT8_BENCH_MIOU)
    variants = {v.key: v for v in VARIANTS}

    def build(key: str) -> Bundle:
        variant = variants[key]
        model = prepared.compressed if variant.compressed else prepared.original
        if model is None:
            raise CompressionError(f"pruning + distillation failed ({prepared.compressed_failure})")
        if variant.how == "oneliner":
            return build_oneliner(model, out / key, train=train, images=calibration_images, parity=int8_parity)
        if variant.how == "int8":
            return build_int8(model, out / key, fmt=variant.format, train=train, images=calibration_images,
                              parity=int8_parity)
        return export(model, out / key, format=variant.format, precision=variant.precision, parity=float_parity,
                      overwrite=True)

    def describe(report: Any) -> tuple[dict, str]:
        return ({"mask_miou": report.mask_miou, "max_abs_diff": report.max_abs_diff, "data": report.data},
                (f"mIoU against the torch model's masks {report.mask_miou:.3f} on "
                 f"{Path(str(report.data).split(' ')[0]).name}"))

    return build_each(list(variants), build, describe, log=log)


def build_int8(model: TrainedModel, path: Path, *, fmt: str, train: Path, images: int, parity: ParityConfig) -> Bundle:
    """edgevision's INT8 for a segmenter: every layer quantised, calibrated on train images, checked on val."""
    from edgevision.compress.calibration import CalibrationConfig
    from edgevision.compress.quantize import quantize

    return quantize(model, path, format=fmt, calibration=CalibrationConfig(data=train, max_images=images),
                    parity=parity, overwrite=True)
