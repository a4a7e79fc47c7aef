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


VARIANTS = task_variants("hf", "INT8 head in float")
FULL_CANDIDATES = tuple(v.key for v in VARIANTS if v.compressed)
#: INT8 bundles must find this mAP50 of their torch model's own detections on the validation images to be
#: benchmarked: a check that the graph is intact, low on purpose so a lossy INT8 bundle is measured and its
#: loss shows in the mAP columns rather than as a missing row.
INT8_BENCH_MAP50 = 0.5


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
    """Every variant at the detector's deployment size (edgevision INT8 with the head in float); a variant that
    cannot be built is listed with why."""
    val = prepared.splits.val

    def describe(report: Any) -> tuple[dict, str]:
        return ({"detection_map50": report.detection_map50, "max_abs_diff": report.max_abs_diff, "data": report.data},
                (f"mAP50 of the torch model's detections {report.detection_map50:.3f} on "
                 f"{Path(str(report.data).split(' ')[0]).name}"))

    return build_task_bundles(
        prepared, out, VARIANTS, calibration_images=calibration_images, head="float", describe=describe, log=log,
        float_parity=ParityConfig(data=val, max_images=PARITY_IMAGES),
        int8_parity=ParityConfig(data=val, max_images=PARITY_IMAGES, min_detection_map50=INT8_BENCH_MAP50))
