"""The detector and bundles behind `make bench`'s detection section.

The demo detector (FCOS on MobileNetV3-Small + FPN, `edgevision.train_detect.train_detector`) is
trained at its deployment size (160×192, letterboxed) on the generated digits-on-photos COCO splits,
seeded, and cached in the work directory (or taken from `--detector-checkpoint`). edgevision full
prunes it (`prune`, a MAC target), distils it from the original (`distill`) and quantises it with the
head in float. Every bundle is checked against its torch model on the validation split; the train
split calibrates; the test split is measured by the caller and chooses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark_models import BuiltBundles, Log, build_each
from benchmark_task_models import (
    CompressPlan,
    PreparedModel,
    TaskModels,
    build_oneliner,
    prepare_model,
)

from edgevision.bundle import Bundle
from edgevision.data.detection import DetectionSplits
from edgevision.errors import CompressionError
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel

#: The detection section's prepared models (the shared shape).
PreparedDetector = PreparedModel


@dataclass(frozen=True, kw_only=True)
class DetectPlan(CompressPlan):
    """How the detector is trained and compressed for the benchmark, and the issue's targets."""

    title: str = "Digits detector (FCOS, MobileNetV3-Small FPN)"
    train_epochs: int = 10  # train_detect.DEFAULT_EPOCHS, what the demo trains
    distill_batch_size: int = 16  # train_detect's batch size; the prune/distill measurements used it too
    distill_alpha: float = 1.0  # weight of the head-output distillation
    distill_feature_weight: float = 1.0  # weight of the FPN feature imitation
    max_head_float_drop_pt: dict[str, float] = field(
        default_factory=lambda: {"hf_openvino": 0.5, "hf_tflite": 1.5})
    max_full_drop_pt: float = 1.0
    min_full_speedup_vs_oneliner: float = 2.0  # end to end, paired median


@dataclass(frozen=True)
class DetectVariant:
    key: str
    label: str
    compressed: bool
    format: str
    precision: str
    how: str  # "export" | "oneliner" (nncf.quantize defaults) | "head_float" (edgevision INT8, head in float)


VARIANTS = (
    DetectVariant("eager", "PyTorch eager FP32", False, "torch", "fp32", "export"),
    DetectVariant("ort_fp32", "ONNX Runtime FP32", False, "onnx", "fp32", "export"),
    DetectVariant("ov_fp32", "OpenVINO FP32", False, "openvino", "fp32", "export"),
    DetectVariant("oneliner", "the one-liner: nncf.quantize defaults → OpenVINO INT8", False, "openvino", "int8",
                  "oneliner"),
    DetectVariant("hf_openvino", "INT8 head in float → OpenVINO", False, "openvino", "int8", "head_float"),
    DetectVariant("hf_onnxruntime", "INT8 head in float → ONNX Runtime", False, "onnx", "int8", "head_float"),
    DetectVariant("hf_tflite", "INT8 head in float → TFLite", False, "tflite", "int8", "head_float"),
    DetectVariant("full_openvino", "edgevision full → OpenVINO INT8", True, "openvino", "int8", "head_float"),
    DetectVariant("full_onnxruntime", "edgevision full → ONNX Runtime INT8", True, "onnx", "int8", "head_float"),
    DetectVariant("full_tflite", "edgevision full → TFLite INT8", True, "tflite", "int8", "head_float"),
)
FULL_CANDIDATES = tuple(v.key for v in VARIANTS if v.compressed)
#: INT8 bundles must find this mAP50 of their torch model's own detections on the validation images to be
#: benchmarked: a check that the graph is intact, low on purpose so a lossy INT8 bundle is measured and its
#: loss shows in the mAP columns rather than as a missing row.
INT8_BENCH_MAP50 = 0.5
#: Validation images each bundle's parity check reads (of 250): bounds the build time.
PARITY_IMAGES = 100


def _train(splits: DetectionSplits, path: Path, epochs: int, seed: int) -> Any:
    from edgevision.train_detect import train_detector

    return train_detector(splits, path, epochs=epochs, seed=seed, threads=2)


def _map_val_test(model: TrainedModel, splits: DetectionSplits) -> dict[str, float]:
    """mAP50-95 and mAP50 of the torch model on val (which chose the epoch) and test (which chose nothing)."""
    from edgevision.data.coco import CocoDetections
    from edgevision.train_detect import evaluate_detector

    found = {}
    for name in ("val", "test"):
        data = CocoDetections.open(getattr(splits, name), labels=model.labels)
        metrics = evaluate_detector(model.module, data, model.preprocess, model.detection)
        found |= {f"{name}_map50_95": metrics.map50_95, f"{name}_map50": metrics.map50}
    return found


DETECTOR = TaskModels(noun="detector", metric="mAP50-95", split_file="annotations.json",
                      kept="head prediction layers", train=_train, score=_map_val_test)


def prepare_detector(
    plan: DetectPlan, *, work: Path, checkpoint: Path | None, data: Path | None, fresh: bool, log: Log
) -> PreparedDetector:
    """The splits, the trained detector (given, cached or trained now) and its pruned + distilled copy."""
    return prepare_model(plan, DETECTOR, work=work, checkpoint=checkpoint, data=data, fresh=fresh, log=log)


def build_detect_bundles(prepared: PreparedDetector, out: Path, *, calibration_images: int, log: Log) -> BuiltBundles:
    """Every variant at the detector's deployment size; a variant that cannot be built is listed with why."""
    val, train = prepared.splits.val, prepared.splits.train
    float_parity = ParityConfig(data=val, max_images=PARITY_IMAGES)
    int8_parity = ParityConfig(data=val, max_images=PARITY_IMAGES, min_detection_map50=INT8_BENCH_MAP50)
    variants = {v.key: v for v in VARIANTS}

    def build(key: str) -> Bundle:
        variant = variants[key]
        model = prepared.compressed if variant.compressed else prepared.original
        if model is None:
            raise CompressionError(f"pruning + distillation failed ({prepared.compressed_failure})")
        if variant.how == "oneliner":
            return build_oneliner(model, out / key, train=train, images=calibration_images, parity=int8_parity)
        if variant.how == "head_float":
            return build_head_float(model, out / key, fmt=variant.format, train=train, images=calibration_images,
                                    parity=int8_parity)
        return export(model, out / key, format=variant.format, precision=variant.precision, parity=float_parity,
                      overwrite=True)

    def describe(report: Any) -> tuple[dict, str]:
        return ({"detection_map50": report.detection_map50, "max_abs_diff": report.max_abs_diff, "data": report.data},
                (f"mAP50 of the torch model's detections {report.detection_map50:.3f} on "
                 f"{Path(str(report.data).split(' ')[0]).name}"))

    return build_each(list(variants), build, describe, log=log)


def build_head_float(model: TrainedModel, path: Path, *, fmt: str, train: Path, images: int,
                     parity: ParityConfig) -> Bundle:
    """edgevision's INT8 for a detector: the head (prediction layers + decoding) kept in float."""
    from edgevision.compress.calibration import CalibrationConfig
    from edgevision.compress.quantize import quantize

    return quantize(model, path, format=fmt, calibration=CalibrationConfig(data=train, max_images=images),
                    head="float", parity=parity, overwrite=True)
