"""Export a TrainedModel to a bundle: model file(s) + manifest + parity report.

One module per format, dispatched through `EXPORTERS`; the shared steps (temp dir, manifest,
parity, atomic rename) are `writer.finish_bundle`, the same sequence quantisation uses, so no
format and no stage can skip them.
"""

from __future__ import annotations

import os

from ..bundle import Bundle, atomic_directory
from ..errors import ConfigError
from ..registry import Registry
from ..source import ModelSource, check_source
from ..types import Format, Precision, Task, parse_one_enum
from .base import ExportArtifact
from .parity import DEFAULT_PARITY, ParityConfig, check_parity, open_parity_data
from .writer import BundleChecks, describe_outputs, finish_bundle, segmentation_output_size, write_bundle

EXPORTERS: Registry = Registry("format")
EXPORTERS.register("torch", "edgevision.export.torch:export_torch")
EXPORTERS.register("onnx", "edgevision.export.onnx:export_onnx")
EXPORTERS.register("openvino", "edgevision.export.openvino:export_openvino")
EXPORTERS.register("tflite", "edgevision.export.tflite:export_tflite")


def export(
    model: ModelSource,
    output: str | os.PathLike[str],
    *,
    format: Format | str = Format.ONNX,
    precision: Precision | str = Precision.FP32,
    parity: ParityConfig = DEFAULT_PARITY,
    runtime: str | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Write `model` (a TrainedModel) as a bundle at `output` and verify it through its engine.

    Raises ParityError (and leaves nothing at `output`) if the engine's outputs disagree with
    the torch model. `runtime` picks the engine for the parity check (default: the format's).
    An ONNX model (OnnxModel) goes through `edgevision.compress.onnx_input.export_onnx_model`.
    """
    model = check_source(model, what="export")
    if model.framework != "torch":
        raise ConfigError(
            f"export converts torch models; {model.name} is a {model.framework} model. Use "
            "edgevision.compress.onnx_input.export_onnx_model (FP32/FP16) or edgevision.compress.quantize (INT8)."
        )
    fmt, prec = check_export_request(format, precision)
    exporter = EXPORTERS.get(fmt.value)
    open_parity_data(parity, task=model.task, labels=model.labels)  # a broken folder fails before any work
    if model.task is Task.SEGMENT:
        segmentation_output_size(model)  # a segmenter whose output breaks the contract fails before converting
    with atomic_directory(output, overwrite=overwrite) as workdir:
        artifact: ExportArtifact = exporter(model, workdir, precision=prec)
        finish_bundle(
            workdir, model, artifact, format=fmt, file_precision=prec, checks=BundleChecks(parity=parity, runtime=runtime)
        )
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


__all__ = [
    "EXPORTERS", "BundleChecks", "ParityConfig", "check_export_request", "check_parity", "describe_outputs", "export",
    "finish_bundle", "write_bundle",
]
