"""What every quantiser receives and returns, and the FP32 ONNX graph most of them start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...export.base import ExportArtifact, output_name_for, package_version
from ...runtimes.base import RuntimeOptions
from ...source import ModelSource
from ...types import Layout, Precision
from ..calibration import CalibrationSet


@dataclass(frozen=True, kw_only=True)
class AccuracyControl:
    """Let the quantiser itself keep accuracy: NNCF reverts layers to float until within `max_drop`."""

    validation: Path
    max_drop: float


@dataclass(frozen=True, kw_only=True)
class QuantizeRequest:
    calibration: CalibrationSet
    ignored_scope: tuple[str, ...] = ()
    accuracy_control: AccuracyControl | None = None


@dataclass(frozen=True, kw_only=True)
class QuantizeResult:
    """Files a quantiser wrote into the bundle's temp dir and how to run them.

    `file_precision` is what the manifest records (the file's numbers); `engine_precision` is
    what the engine computes in. They differ only for TensorRT's calibrated engines, which are
    built from an fp32 ONNX file. `runtime`/`runtime_options` run the bundle for parity and the guard.
    """

    artifact: ExportArtifact
    summary: str  # the manifest's compression note
    file_precision: Precision = Precision.INT8
    engine_precision: Precision = Precision.INT8
    runtime: str | None = None
    runtime_options: RuntimeOptions | None = None


class Quantizer(Protocol):
    """One module per engine implements this; registered in `edgevision.compress.quantize.QUANTIZERS`."""

    def __call__(self, source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult: ...


def write_source_onnx(source: ModelSource, path: Path) -> ExportArtifact:
    """The FP32 ONNX graph of `source` (torch model: TorchScript export; ONNX model: a copy) at `path`."""
    if source.framework == "onnx":
        source.write_fp32(path)
        return source.artifact()
    from ...export.onnx import OPSET, write_fp32_onnx

    write_fp32_onnx(source, path)
    versions = {"torch": package_version("torch"), "onnx": package_version("onnx"), "opset": str(OPSET)}
    return ExportArtifact(
        (path.name,), "input", output_name_for(source), layout=Layout.NCHW, dynamic_batch=True, versions=versions
    )


def ignored_note(ignored_scope: tuple[str, ...]) -> str:
    return f", kept in float: {', '.join(ignored_scope)}" if ignored_scope else ""


__all__ = [
    "AccuracyControl", "QuantizeRequest", "QuantizeResult", "Quantizer", "ignored_note", "write_source_onnx",
]
