"""Export a TrainedModel to a bundle: model file(s) + manifest + parity report.

One module per format, dispatched through `EXPORTERS`; this module holds the shared steps
(temp dir, manifest, parity, atomic rename) so no format can skip them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..bundle import Bundle, DetectionSpec, InputSpec, Manifest, OutputSpec, atomic_directory, write_manifest
from ..data.folder import ImageFolder
from ..errors import ConfigError, ParityError
from ..model import TrainedModel
from ..registry import Registry
from ..types import Format, Precision, Task, parse_one_enum
from .base import ExportArtifact, package_version
from .parity import ParityConfig, check_parity, describe_failure

EXPORTERS: Registry = Registry("format")
EXPORTERS.register("torch", "edgevision.export.torch:export_torch")
EXPORTERS.register("onnx", "edgevision.export.onnx:export_onnx")
EXPORTERS.register("openvino", "edgevision.export.openvino:export_openvino")
EXPORTERS.register("tflite", "edgevision.export.tflite:export_tflite")


def export(
    model: TrainedModel,
    output: str | os.PathLike[str],
    *,
    format: Format | str = Format.ONNX,  # noqa: A002 - the user's word for it
    precision: Precision | str = Precision.FP32,
    parity: ParityConfig = ParityConfig(),
    runtime: str | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Write `model` as a bundle at `output` and verify it through its engine.

    Raises ParityError (and leaves nothing at `output`) if the engine's outputs disagree with
    the torch model. `runtime` picks the engine for the parity check (default: the format's).
    """
    fmt, prec = check_export_request(format, precision)
    exporter = EXPORTERS.get(fmt.value)
    if parity.data is not None:  # a missing or broken folder fails here, before anything is written
        ImageFolder.open(parity.data, labels=model.labels)
    with atomic_directory(output, overwrite=overwrite) as workdir:
        artifact: ExportArtifact = exporter(model, workdir, precision=prec)
        bundle = write_bundle(workdir, model, artifact, fmt, prec)
        report = check_parity(model.module, bundle, parity, runtime=runtime)
        bundle = write_bundle(workdir, model, artifact, fmt, prec, parity=report)
        if not report.passed:
            raise ParityError(f"{fmt.value} {prec.value} export failed parity: {describe_failure(report)}.")
    return Bundle.load(output)


def check_export_request(format: Format | str, precision: Precision | str) -> tuple[Format, Precision]:
    """The parsed (format, precision), or a ConfigError if the exporter cannot make that pair."""
    fmt = parse_one_enum(Format, format, option="format")
    prec = parse_one_enum(Precision, precision, option="precision")
    supported = EXPORTERS.module_attribute(fmt.value, "PRECISIONS")
    if prec not in supported:
        names = ", ".join(sorted(p.value for p in supported))
        hint = " INT8 needs calibration data: use edgevision.compress.quantize." if prec is Precision.INT8 else ""
        raise ConfigError(f"{fmt.value} export supports precision {names}, not {prec.value}.{hint}")
    return fmt, prec


def write_bundle(directory: Path, model: TrainedModel, artifact: ExportArtifact, fmt: Format, precision: Precision, *, parity=None) -> Bundle:  # noqa: ANN001
    """Write the manifest for files already in `directory` and return the (unrenamed) bundle."""
    from ..bundle import SourceInfo

    height, width = model.input_size
    batch = -1 if artifact.dynamic_batch else 1
    spec = InputSpec(name=artifact.input_name, shape=(batch, 3, height, width)).with_layout(artifact.layout)
    versions = {"edgevision": package_version("edgevision"), **artifact.versions}
    manifest = Manifest(
        name=model.name, task=getattr(model, "task", Task.CLASSIFY), format=fmt, precision=precision,
        model_files=artifact.model_files, input=spec,
        file_bytes={name: (directory / name).stat().st_size for name in artifact.model_files},
        outputs=describe_outputs(model, artifact.output_name), num_classes=model.num_classes, preprocess=model.preprocess,
        labels=tuple(model.labels), source=SourceInfo(architecture=model.architecture, sha256=model.weights_sha256()),
        versions=versions, parity=parity, compression=dict(model.notes), detection=_detection_spec(model, artifact),
    )
    write_manifest(directory, manifest)
    return Bundle(directory, manifest)


def describe_outputs(model: TrainedModel, output_name: str) -> tuple[OutputSpec, ...]:
    """The manifest's `outputs` for `model`'s task (one tensor for classify and detect)."""
    task = getattr(model, "task", Task.CLASSIFY)
    if task is Task.DETECT:
        height, width = model.input_size
        strides = model.detection.strides
        candidates = sum((height // s) * (width // s) for s in strides) if strides else -1
        return (OutputSpec(name=output_name, shape=(-1, 4 + model.num_classes, candidates), meaning="boxes_scores"),)
    return (OutputSpec(name=output_name, shape=(-1, model.num_classes), meaning="logits"),)


def _detection_spec(model: TrainedModel, artifact: ExportArtifact) -> DetectionSpec | None:
    detection = getattr(model, "detection", None)
    return None if detection is None else detection.model_copy(update={"output": artifact.output_name})


__all__ = ["EXPORTERS", "ParityConfig", "check_export_request", "export"]
