"""What every quantiser receives and returns, and the FP32 ONNX graph most of them start from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

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


#: How a detector's head is quantised: "float" keeps the prediction layers and decoding in float
#: (the scope is computed from the converted graph, see `head_scope`); "plain" quantises everything.
HeadPolicy = Literal["float", "plain"]
#: Integer scheme: int8 weights with int8 activations, or (TFLite) int16 activations where int8 loses too much.
Scheme = Literal["w8a8", "w8a16"]


@dataclass(frozen=True, kw_only=True)
class QuantizeRequest:
    """What to quantise with. `head` is None for classifiers (they have no detection head)."""

    calibration: CalibrationSet
    ignored_scope: tuple[str, ...] = ()
    accuracy_control: AccuracyControl | None = None
    head: HeadPolicy | None = None
    scheme: Scheme = "w8a8"

    @property
    def keep_head_float(self) -> bool:
        return self.head == "float"


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
    notes: dict[str, str] = field(default_factory=dict)  # further compression notes (e.g. the nodes kept in float)


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


def detection_output(source: ModelSource) -> str:
    """The name of the detector's raw head output (where the head-scope walk starts)."""
    detection = getattr(source, "detection", None)
    return detection.output if detection is not None else output_name_for(source)


def head_note(request: QuantizeRequest, scope: Any) -> str:
    """The manifest's words for the head policy: how many nodes stayed in float, or that none did."""
    if request.head is None:
        return ""
    if scope is None:
        return ", head quantised too (plain)"
    return f", head in float: {scope.describe()}"


def ignored_note(ignored_scope: tuple[str, ...]) -> str:
    return f", kept in float: {', '.join(ignored_scope)}" if ignored_scope else ""


__all__ = [
    "AccuracyControl", "HeadPolicy", "QuantizeRequest", "QuantizeResult", "Quantizer", "Scheme", "detection_output",
    "head_note", "ignored_note", "write_source_onnx",
]
