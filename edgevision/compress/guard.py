"""The accuracy guard: a compressed bundle, run by its engine, must stay within an accuracy budget.

The bundle is evaluated the way a device will run it (``load_runtime`` + ``predict`` on raw
images, so the manifest's preprocessing is exercised too); the original model — the torch
module, or for an ONNX model from elsewhere the original file through ONNX Runtime — is
evaluated on the same images. A drop beyond `max_accuracy_drop` is an AccuracyBudgetError.
Callers build bundles inside ``atomic_directory``, so a raise leaves nothing on disk.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import Bundle, InputSpec, ParityReport
from ..data.folder import ImageFolder
from ..errors import AccuracyBudgetError, ConfigError
from ..export.parity import ParityConfig, compare_logits, sample_inputs
from ..preprocess import preprocess_batch
from ..runtimes.base import RuntimeOptions
from ..types import Layout, Precision

#: Images per batch when evaluating (the engine splits further if its batch is fixed).
EVAL_BATCH = 32


def check_max_drop(max_accuracy_drop: float | None) -> None:
    """Reject budgets that are not a fraction in [0, 1) (1.5 meant as points is the usual slip)."""
    if max_accuracy_drop is None:
        return
    if not (math.isfinite(max_accuracy_drop) and 0.0 <= max_accuracy_drop < 1.0):
        raise ConfigError(
            f"max_accuracy_drop is an absolute top-1 fraction in [0, 1) (0.015 = 1.5 points), got {max_accuracy_drop}."
        )


@dataclass(frozen=True, kw_only=True)
class AccuracyReport:
    """Top-1 of the original and the compressed model on the same validation images.

    The guard decides whether a bundle is kept, so `data` is a selection split (val); the figure
    to publish is measured afterwards on a held-out test split (bench, compress report).
    """

    original: float
    compressed: float
    images: int
    max_drop: float
    engine: str
    data: str

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
        return (
            f"top-1 {self.original:.2%} → {self.compressed:.2%} (drop {self.drop * 100:.2f} pt, budget "
            f"{self.max_drop * 100:.2f} pt) on {self.images} images of {self.data} through {self.engine} "
            "(a selection check that gated this bundle, not a held-out figure)"
        )


def reference_logits(source: Any, batch: np.ndarray) -> np.ndarray:
    """Logits of the original model for an NCHW float32 batch (torch module, or the original ONNX file)."""
    from .onnx_input import OnnxModel

    if isinstance(source, OnnxModel):
        return source.logits(batch)
    import torch

    with torch.inference_mode():
        return source.module.eval()(torch.from_numpy(np.ascontiguousarray(batch))).numpy()


class ReferenceLogits:
    """`reference_logits` remembered per image, so the guard and parity share one pass of the source model."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._seen: dict[bytes, np.ndarray] = {}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        keys = [hashlib.sha1(np.ascontiguousarray(sample).tobytes()).digest() for sample in batch]
        missing = [i for i, key in enumerate(keys) if key not in self._seen]
        if missing:
            for i, row in zip(missing, reference_logits(self.source, batch[missing])):
                self._seen[keys[i]] = row
        return np.stack([self._seen[key] for key in keys])


def check_accuracy(
    source: Any,
    bundle: Bundle,
    *,
    validation: str | Path,
    max_accuracy_drop: float,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
    what: str = "compressed",
    reference: ReferenceLogits | None = None,
) -> AccuracyReport:
    """Evaluate `bundle` through its engine and `source` on `validation`; raise if the drop is over budget."""
    from ..runtimes import load_runtime

    check_max_drop(max_accuracy_drop)
    reference = reference or ReferenceLogits(source)
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
    source: Any,
    bundle: Bundle,
    config: ParityConfig,
    *,
    precision: Precision,
    runtime: str | None = None,
    options: RuntimeOptions | None = None,
    reference: ReferenceLogits | None = None,
) -> ParityReport:
    """Like `export.parity.check_parity`, for any source (torch or ONNX) and engine options.

    `precision` is what the engine computes in (an fp32 ONNX file built into an int8 TensorRT
    engine is compared as int8: top-1 agreement only).
    """
    from ..runtimes import load_runtime

    inputs, described = sample_inputs(bundle, config)
    reference = reference or ReferenceLogits(source)
    expected = np.concatenate([reference(chunk) for chunk in np.array_split(inputs, max(1, len(inputs) // 64))])
    layout = bundle.manifest.input.layout
    engine_inputs = inputs if layout is Layout.NCHW else np.ascontiguousarray(inputs.transpose(0, 2, 3, 1))
    with load_runtime(bundle, runtime, options=options) as engine:
        return compare_logits(
            expected, engine.infer(engine_inputs), precision=precision, config=config,
            engine=engine.name, engine_precision=engine.engine_precision, data=described,
        )


__all__ = ["AccuracyReport", "ReferenceLogits", "check_accuracy", "check_max_drop", "check_source_parity", "reference_logits"]
