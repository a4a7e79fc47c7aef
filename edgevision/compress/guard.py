"""The accuracy guard: a compressed bundle, run by its engine, must stay within an accuracy budget.

The bundle is evaluated the way a device will run it (``load_runtime`` + ``predict`` on raw
images, so the manifest's preprocessing is exercised too); the original model — the torch
module, or for an ONNX model from elsewhere the original file through ONNX Runtime (any
`edgevision.source.ModelSource`) — is evaluated on the same images. A drop beyond
`max_accuracy_drop` is an AccuracyBudgetError. Classifiers are measured by top-1 on an ImageFolder;
detectors by COCO mAP50-95 on a COCO split, the bundle through `runtime.detect` and the source's raw
head through the same device post-processing, both at the evaluation score threshold (as bench does).
Callers build bundles inside ``atomic_directory``, so a raise leaves nothing on disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Bundle, InputSpec, ParityReport
from ..data.folder import ImageFolder
from ..errors import AccuracyBudgetError, ConfigError
from ..export.parity import ParityConfig, check_parity
from ..preprocess import preprocess_batch
from ..runtimes.base import RuntimeOptions
from ..source import ModelSource, ReferenceOutputs, check_source
from ..types import Precision, Task

#: Images per batch when evaluating (the engine splits further if its batch is fixed).
EVAL_BATCH = 32


def check_max_drop(max_accuracy_drop: float | None) -> None:
    """Reject budgets that are not a fraction in [0, 1) (1.5 meant as points is the usual slip)."""
    if max_accuracy_drop is None:
        return
    if not (math.isfinite(max_accuracy_drop) and 0.0 <= max_accuracy_drop < 1.0):
        raise ConfigError(
            "max_accuracy_drop is an absolute fraction in [0, 1) of top-1 (classifiers), mAP50-95 (detectors) or mIoU "
            "(segmenters): "
            f"0.015 = 1.5 points, got {max_accuracy_drop}."
        )


@dataclass(frozen=True, kw_only=True)
class AccuracyReport:
    """Top-1 (or a detector's mAP50-95) of the original and the compressed model on the same validation images.

    The guard decides whether a bundle is kept, so `data` is a selection split (val); the figure
    to publish is measured afterwards on a held-out test split (bench, compress report).
    """

    original: float
    compressed: float
    images: int
    max_drop: float
    engine: str
    data: str
    metric: str = "top-1"
    #: A secondary figure shown in the summary: (name, original, compressed), e.g. a detector's mAP50.
    secondary: tuple[str, float, float] | None = None

    def __post_init__(self) -> None:
        if self.images < 1:
            raise ValueError(f"AccuracyReport needs at least one image, got {self.images}")
        for value in (self.original, self.compressed):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"accuracies must lie in [0, 1], got {value}")
        check_max_drop(self.max_drop)

    @property
    def drop(self) -> float:
        """Points lost as a fraction (negative when the compressed model is better)."""
        return self.original - self.compressed

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop + 1e-12

    def summary(self) -> str:
        if self.metric != "top-1":
            extra = (f", {self.secondary[0]} {self.secondary[1]:.4f} → {self.secondary[2]:.4f}"
                     if self.secondary else "")
            return (
                f"{self.metric} {self.original:.4f} → {self.compressed:.4f} (drop {self.drop * 100:.2f} pt, budget "
                f"{self.max_drop * 100:.2f} pt{extra}) on {self.images} images of {self.data} through {self.engine} "
                "(a selection check that gated this bundle, not a held-out figure)"
            )
        return (
            f"top-1 {self.original:.2%} → {self.compressed:.2%} (drop {self.drop * 100:.2f} pt, budget "
            f"{self.max_drop * 100:.2f} pt) on {self.images} images of {self.data} through {self.engine} "
            "(a selection check that gated this bundle, not a held-out figure)"
        )


def reference_logits(source: ModelSource, batch: np.ndarray) -> np.ndarray:
    """Logits of the original model for an NCHW float32 batch (torch module, or the original ONNX file)."""
    return check_source(source, what="reference_logits").reference_outputs(batch)


#: The guard's name for `edgevision.source.ReferenceOutputs` (one pass of the source shared with parity).
ReferenceLogits = ReferenceOutputs


def check_accuracy(
    source: ModelSource,
    bundle: Bundle,
    *,
    validation: str | Path,
    max_accuracy_drop: float,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
    what: str = "compressed",
    reference: ReferenceOutputs | None = None,
) -> AccuracyReport:
    """Evaluate `bundle` through its engine and `source` on `validation`; raise if the drop is over budget.

    Classifiers: top-1 on an ImageFolder. Detectors: COCO mAP50-95 on a COCO split (`guard_detect`).
    Segmenters: mIoU on a mask split (images/ + masks/ + labels.txt; `guard_segment`).
    """
    from ..runtimes import load_runtime

    check_max_drop(max_accuracy_drop)
    reference = reference or ReferenceOutputs(check_source(source, what="check_accuracy"))
    if bundle.manifest.task is Task.DETECT:
        from .guard_detect import measure_detection_map

        report = measure_detection_map(
            bundle, reference, validation=Path(validation), max_accuracy_drop=max_accuracy_drop, runtime=runtime,
            options=options,
        )
        if not report.passed:
            raise AccuracyBudgetError(
                f"The {what} {bundle.manifest.format.value} detector lost too much mAP: {report.summary()}. "
                "Nothing was written. Calibrate on more, representative images (the training split), keep the "
                "detection head in float (head='float'), try scheme='w8a16' (TFLite), or allow a larger "
                "max_accuracy_drop."
            )
        return report
    if bundle.manifest.task is Task.SEGMENT:
        from .guard_segment import measure_segmentation_miou

        report = measure_segmentation_miou(
            bundle, reference, validation=Path(validation), max_accuracy_drop=max_accuracy_drop, runtime=runtime,
            options=options,
        )
        if not report.passed:
            raise AccuracyBudgetError(
                f"The {what} {bundle.manifest.format.value} segmenter lost too much mIoU: {report.summary()}. "
                "Nothing was written. Calibrate on more, representative images (the training split), keep the "
                "class-score layers in float (ignored_scope), or allow a larger max_accuracy_drop."
            )
        return report
    if bundle.manifest.task is not Task.CLASSIFY:
        raise ConfigError(
            f"The accuracy guard measures classifiers (top-1), detectors (mAP) and segmenters (mIoU); "
            f"{bundle.manifest.name} is a {bundle.manifest.task.value} bundle. Drop validation/max_accuracy_drop."
        )
    folder = ImageFolder.open(validation, labels=bundle.manifest.labels)
    nchw = InputSpec(name="input", shape=(1, 3, *bundle.manifest.preprocess.size))
    correct_original = correct_compressed = 0
    with load_runtime(bundle, runtime, options=options) as engine:
        for images, labels in folder.batches(EVAL_BATCH):
            original = reference(preprocess_batch(images, bundle.manifest.preprocess, nchw))
            compressed = engine.predict(images)
            correct_original += int(np.sum(original.argmax(1) == labels))
            correct_compressed += int(np.sum(compressed.argmax(1) == labels))
        engine_name = f"{engine.name} ({engine.engine_precision})"
    report = AccuracyReport(
        original=correct_original / len(folder), compressed=correct_compressed / len(folder), images=len(folder),
        max_drop=max_accuracy_drop, engine=engine_name, data=str(validation),
    )
    if not report.passed:
        raise AccuracyBudgetError(
            f"The {what} {bundle.manifest.format.value} model lost too much accuracy: {report.summary()}. "
            "Nothing was written. Use more or more representative calibration images, keep sensitive layers in "
            "float (ignored_scope, e.g. the classifier), or allow a larger max_accuracy_drop."
        )
    return report


def check_source_parity(
    source: ModelSource,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
    reference: ReferenceOutputs | None = None,
) -> ParityReport:
    """The earlier name of `edgevision.export.parity.check_parity` (one entry point for every source and task)."""
    return check_parity(source, bundle, config, precision=precision, runtime=runtime, options=options, reference=reference)


__all__ = ["AccuracyReport", "ReferenceLogits", "check_accuracy", "check_max_drop", "check_source_parity", "reference_logits"]
