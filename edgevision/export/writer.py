"""The one bundle writer, and the one sequence that turns written model files into a checked bundle.

Every path that makes a bundle — `export`, FP16/FP32 bundles of ONNX models, INT8 quantisation
— writes its model files into an `atomic_directory` and then calls `finish_bundle`:
manifest → optional accuracy guard → parity → manifest with the evidence → ParityError if it
failed. Raising anywhere discards the directory, so no path can ship a bundle that skipped a step.

The accuracy guard lives in `edgevision.compress` (it is a compression concern); it reaches this
module as a callable, so export never imports compress (the chain runs compress → export).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import (
    Bundle,
    DetectionSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    ParityReport,
    SegmentationSpec,
    SourceInfo,
    write_manifest,
)
from ..errors import ParityError
from ..source import ModelSource, ReferenceOutputs
from ..types import Format, Precision, Task
from .base import ExportArtifact, package_version
from .parity import ParityConfig, check_parity, describe_failure

#: The accuracy guard as finish_bundle sees it: (bundle so far, the source's cached outputs) → a
#: one-line summary for the manifest's compression notes; raises to reject the bundle.
AccuracyCheck = Callable[[Bundle, ReferenceOutputs], str]


@dataclass(frozen=True, kw_only=True)
class BundleChecks:
    """What `finish_bundle` verifies and with which engine."""

    parity: ParityConfig = field(default_factory=ParityConfig)
    accuracy: AccuracyCheck | None = None
    runtime: str | None = None  # the engine for parity and the guard (default: the format's)
    runtime_options: Any = None  # a RuntimeOptions for that engine
    failure_hint: str = ""  # appended to a ParityError (e.g. what to try for INT8)


def write_bundle(
    directory: Path,
    source: ModelSource,
    artifact: ExportArtifact,
    fmt: Format,
    precision: Precision,
    *,
    parity: ParityReport | None = None,
    notes: Mapping[str, str] | None = None,
    reference: ReferenceOutputs | None = None,
) -> Bundle:
    """Write the manifest for the model files already in `directory`; return the (unrenamed) bundle.

    `precision` is the file's precision as the manifest records it; `notes` (default: the
    source's) are the compression history shown to users. `reference` (the source's cached
    outputs) spares a segmenter a second forward pass to measure its output size.
    """
    height, width = source.input_size
    batch = -1 if artifact.dynamic_batch else 1
    spec = InputSpec(name=artifact.input_name, shape=(batch, 3, height, width)).with_layout(artifact.layout)
    manifest = Manifest(
        name=source.name, task=source.task, format=fmt, precision=precision, model_files=artifact.model_files,
        input=spec, file_bytes={name: (directory / name).stat().st_size for name in artifact.model_files},
        outputs=describe_outputs(source, artifact.output_name, reference=reference), num_classes=source.num_classes,
        preprocess=source.preprocess, labels=tuple(source.labels), detection=detection_spec(source, artifact),
        segmentation=segmentation_spec(source, artifact),
        source=SourceInfo(architecture=source.architecture, sha256=source.weights_sha256(), framework=source.framework),
        versions={"edgevision": package_version("edgevision"), **artifact.versions}, parity=parity,
        compression=dict(source.notes if notes is None else notes), conversion=artifact.conversion,
    )
    write_manifest(directory, manifest)
    return Bundle(directory, manifest)


def finish_bundle(
    directory: Path,
    source: ModelSource,
    artifact: ExportArtifact,
    *,
    format: Format,
    file_precision: Precision,
    engine_precision: Precision | None = None,
    notes: Mapping[str, str] | None = None,
    checks: BundleChecks = BundleChecks(),
) -> Bundle:
    """Manifest, accuracy guard, parity, final manifest; a ParityError (or the guard's error) if it fails.

    `engine_precision` is what the engine computes in when it differs from the file's (a
    TensorRT INT8 engine built from an fp32 ONNX file); parity is judged at that precision.
    """
    engine_precision = engine_precision or file_precision
    notes = dict(source.notes if notes is None else notes)
    reference = ReferenceOutputs(source)
    bundle = write_bundle(directory, source, artifact, format, file_precision, notes=notes, reference=reference)
    if checks.accuracy is not None:
        notes["accuracy"] = checks.accuracy(bundle, reference)
    report = check_parity(
        source, bundle, checks.parity, precision=engine_precision, runtime=checks.runtime,
        options=checks.runtime_options, reference=reference,
    )
    bundle = write_bundle(
        directory, source, artifact, format, file_precision, notes=notes, parity=report, reference=reference
    )
    if not report.passed:
        raise ParityError(
            f"{format.value} {engine_precision.value} bundle failed parity: {describe_failure(report)}. "
            f"Nothing was written.{checks.failure_hint}"
        )
    return bundle


def describe_outputs(
    source: ModelSource, output_name: str, *, reference: ReferenceOutputs | None = None
) -> tuple[OutputSpec, ...]:
    """The manifest's `outputs` for the source's task (one tensor for every task).

    A segmenter's h×w is measured: one blank image through the source (`reference` when given).
    """
    if source.task is Task.SEGMENT:
        height, width = segmentation_output_size(source, reference=reference)
        return (OutputSpec(name=output_name, shape=(-1, source.num_classes, height, width), meaning="class_scores"),)
    if source.task is Task.DETECT:
        height, width = source.input_size
        strides = source.detection.strides if source.detection is not None else ()
        candidates = sum((height // s) * (width // s) for s in strides) if strides else -1
        return (OutputSpec(name=output_name, shape=(-1, 4 + source.num_classes, candidates), meaning="boxes_scores"),)
    return (OutputSpec(name=output_name, shape=(-1, source.num_classes), meaning="logits"),)


def detection_spec(source: ModelSource, artifact: ExportArtifact) -> DetectionSpec | None:
    """The source's decoding spec, pointed at the output name the exporter gave the raw head."""
    if source.detection is None:
        return None
    return source.detection.model_copy(update={"output": artifact.output_name})


def segmentation_spec(source: ModelSource, artifact: ExportArtifact) -> SegmentationSpec | None:
    """The source's per-pixel decoding spec, pointed at the output name the exporter gave the scores."""
    if source.segmentation is None:
        return None
    return source.segmentation.model_copy(update={"output": artifact.output_name})


def segmentation_output_size(source: ModelSource, *, reference: ReferenceOutputs | None = None) -> tuple[int, int]:
    """(h, w) of the segmenter's per-pixel scores: one blank image through the source, checked against the contract.

    Raises ConfigError (what the output is, and the fix) when it is not (1, classes, h, w) with h×w the input
    size or a whole stride of it: `export` calls this before converting, so a wrong model fails in a second.
    """
    from ..tasks.segment import check_class_scores

    height, width = source.input_size
    blank = np.zeros((1, 3, height, width), dtype=np.float32)
    scores = (reference or source.reference_outputs)(blank)
    return check_class_scores(np.shape(scores), source.num_classes, (height, width), model=source.name)


__all__ = [
    "AccuracyCheck", "BundleChecks", "describe_outputs", "detection_spec", "finish_bundle", "segmentation_output_size",
    "segmentation_spec", "write_bundle",
]
