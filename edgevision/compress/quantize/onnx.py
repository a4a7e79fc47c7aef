"""INT8 for ONNX Runtime: static post-training quantisation to a Q/DQ ONNX file.

``quant_pre_process`` (shape inference + graph clean-up) first, as ONNX Runtime advises, then
``quantize_static``: QuantizeLinear/DequantizeLinear pairs around each quantised op (the QDQ
format every engine reads — ONNX Runtime, OpenVINO, TensorRT), int8 weights per output
channel, uint8 activations per tensor from MinMax ranges over the calibration images.
Ignored-scope nodes get no Q/DQ pairs and run in float. For a detector with `head="float"` the
head scope (`head_scope.onnx_head_scope` on the prepared graph) joins them, and the quantised
graph is checked to hold no Q/DQ inside it.

Why uint8 activations ("U8S8"): ONNX Runtime's x86 integer kernels are built around it.
Measured here (AVX-512 VNNI, resnet18, batch 1, 2 threads): int8 activations ("S8S8") ran
*slower* than FP32 (2.2 vs 1.2 ms at 32×32), U8S8 faster (0.75 ms; 23 vs 167 ms at 224×224).
On x86 CPUs without VNNI, U8S8 can saturate; the accuracy guard is the check for that.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..._optional import require
from ...errors import CompressionError, ConfigError
from ...export.base import ExportArtifact, package_version
from ...types import Format
from ..calibration import ort_calibration_reader
from .base import QuantizeRequest, QuantizeResult, detection_output, head_note, ignored_note, write_source_onnx
from .head_scope import HeadScope, onnx_head_scope, verify_onnx_head_float
from .scope import resolve_ignored_scope

FORMAT = Format.ONNX
MODEL_FILE = "model.onnx"
#: Images per calibration run (MinMax ranges are the same whatever the grouping).
CALIBRATION_BATCH = 16


def quantize_onnx(source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult:
    """Write a Q/DQ INT8 ``model.onnx`` into `directory`, calibrated on `request.calibration`."""
    if request.scheme != "w8a8":
        raise ConfigError(f"ONNX Runtime INT8 here is w8a8; {request.scheme} is a TFLite option. Drop it or use format tflite.")
    artifact, scope = write_qdq_onnx(source, directory / MODEL_FILE, request=request, symmetric_activations=False)
    summary = (
        f"ONNX Runtime static INT8 (QDQ, per-channel int8 weights, MinMax uint8 activations), "
        f"{request.calibration.describe()}{ignored_note(request.ignored_scope)}{head_note(request, scope)}"
    )
    return QuantizeResult(artifact=artifact, summary=summary)


def write_qdq_onnx(
    source: Any, path: Path, *, request: QuantizeRequest, symmetric_activations: bool
) -> tuple[ExportArtifact, HeadScope | None]:
    """Quantise `source` to a Q/DQ ONNX file at `path`; returns its artifact and the head scope kept in float.

    `symmetric_activations` (int8, zero point 0) is what TensorRT requires of Q/DQ graphs.
    """
    onnx = require("onnx", extra="onnx", what="onnx")
    require("onnxruntime", extra="onnx", what="ONNX Runtime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgevision-quant-") as scratch:
        float_path = Path(scratch) / "float.onnx"
        prepared_path = Path(scratch) / "prepared.onnx"
        artifact = write_source_onnx(source, float_path)
        try:
            with _quiet():
                quant_pre_process(str(float_path), str(prepared_path))
        except Exception as exc:
            raise CompressionError(
                f"ONNX Runtime could not prepare the graph for quantisation: {_first_line(exc)}. "
                "Check that the model runs in ONNX Runtime at FP32 first."
            ) from exc
        prepared = onnx.load(str(prepared_path), load_external_data=False).graph
        node_names = [node.name for node in prepared.node]
        excluded = resolve_ignored_scope(request.ignored_scope, node_names, engine="ONNX") if request.ignored_scope else []
        scope = onnx_head_scope(prepared, detection_output(source)) if request.keep_head_float else None
        if scope is not None:
            excluded += [name for name in scope.nodes if name not in excluded]
        reader = ort_calibration_reader(
            request.calibration, input_name=artifact.input_name, layout=artifact.layout,
            batch_size=CALIBRATION_BATCH if artifact.dynamic_batch else 1,
        )
        try:
            with _quiet():
                quantize_static(
                    str(prepared_path), str(path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
                )
        except Exception as exc:
            raise CompressionError(f"ONNX Runtime could not quantise the model to INT8: {_first_line(exc)}") from exc
        if scope is not None:
            verify_onnx_head_float(onnx.load(str(path), load_external_data=False).graph, scope)
    versions = {
        **artifact.versions, "onnxruntime": package_version("onnxruntime"),
        "calibration_images": str(len(request.calibration)),
    }
    return replace(artifact, model_files=(path.name,), versions=versions), scope


@contextlib.contextmanager
def _quiet() -> Any:
    """ORT's quantiser logs a warning per op and prints progress; keep the user's console clean."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]
