"""INT8 for TFLite (LiteRT): full-integer quantisation with a representative dataset.

Reuses the TFLite exporter's `quantize_tflite_int8` (ai-edge-quantizer ``static_wi8_ai8`` on the
litert-torch FP32 file): int8 weights per channel, int8 activations, int8 input and output,
which is what integer-only accelerators (Edge TPU, NPUs, Cortex-M) need. Full-integer means no
layer can stay in float, so an ignored scope is refused rather than quietly dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import CompressionError, ConfigError
from ...types import Format
from .base import QuantizeRequest, QuantizeResult

FORMAT = Format.TFLITE


def quantize_tflite(source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult:
    """Write a full-integer INT8 ``model.tflite`` (NHWC, batch 1) into `directory`."""
    if source.framework != "torch":
        raise CompressionError(
            f"{source.name} is an ONNX model; TFLite conversion needs the torch model (litert-torch). "
            "Quantise it for onnx or openvino instead."
        )
    if request.ignored_scope:
        raise ConfigError(
            f"TFLite INT8 here is full-integer, so layers cannot stay in float (ignored_scope={list(request.ignored_scope)}). "
            "Drop ignored_scope, or quantise for onnx/openvino, which keep ignored layers in float."
        )
    from ...export.tflite import quantize_tflite_int8

    calibration = request.calibration
    artifact = quantize_tflite_int8(source, directory, calibration, max_samples=len(calibration))
    summary = (
        "LiteRT full-integer INT8 (ai-edge-quantizer static_wi8_ai8: per-channel int8 weights, int8 activations "
        f"and I/O), {calibration.describe()}"
    )
    return QuantizeResult(artifact=artifact, summary=summary)
