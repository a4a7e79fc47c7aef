"""INT8 for TFLite (LiteRT): full-integer quantisation with a representative dataset.

Reuses the TFLite exporter's `quantize_tflite_int8` (ai-edge-quantizer ``static_wi8_ai8`` on the
litert-torch FP32 file): int8 weights per channel, int8 activations, int8 input and output,
which is what integer-only accelerators (Edge TPU, NPUs, Cortex-M) need. Full-integer means no
layer can stay in float, so an ignored scope is refused rather than quietly dropped.

Detectors keep the head in float by default (`head_scope.tflite_head_scope` on the FP32 flatbuffer,
ops selected by output tensor name with ai-edge-quantizer's NO_QUANTIZE algorithm, verified on the
quantised file); their input and output then stay float32 (the first and last ops are float or
quantise/dequantise at the edges, also with head="plain"). `scheme="w8a16"` keeps int16 activations (``static_wi8_ai16``)
where int8 loses too much; the manifest's note says which was used.

Transformers (`transformer.find_transformer`) take the same route and the note says so. Measured on a
4-block ViT trained on the digits (x86, 1 thread, 360 test images): top-1 97.8 % vs 98.1 % FP32, parity
0.989, but 3–4× *slower* than the FP32 file (2.0 vs 0.53 ms p50 in one run, 4.4 vs 1.5 ms in another;
the decomposed LayerNorm's MEAN/RSQRT/SQUARED_DIFFERENCE, GELU and Softmax all run in int8 there), with relative logit error 0.11 (ONNX Runtime and OpenVINO: ~0.02). Keeping all but the matrix products
float (float I/O) was no faster (3.1–5.2 ms) nor more faithful (0.10). Ship FP32/FP16 TFLite for a ViT on
a CPU; full-integer INT8 is for integer-only NPUs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import CompressionError, ConfigError
from ...types import Format
from .base import QuantizeRequest, QuantizeResult, head_note
from .transformer import find_transformer

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
    from .head_scope import tflite_head_scope, verify_tflite_head_float

    calibration = request.calibration
    bits = 16 if request.scheme == "w8a16" else 8
    scopes = []

    def float_scope(path: Path) -> Any:
        scopes.append(tflite_head_scope(path))
        return scopes[-1]

    artifact = quantize_tflite_int8(
        source, directory, calibration, max_samples=len(calibration), activation_bits=bits,
        float_scope=float_scope if request.keep_head_float else None, float_io=request.head is not None,
    )
    scope = scopes[-1] if scopes else None
    if scope is not None:
        verify_tflite_head_float(directory / artifact.model_files[0], scope)
    what = (
        f"LiteRT INT8 (ai-edge-quantizer static_wi8_ai{bits}: per-channel int8 weights, int{bits} activations"
        + (", float32 input/output" if request.head is not None else "") + ")"
    )
    if request.head is None and bits == 8:
        what = ("LiteRT full-integer INT8 (ai-edge-quantizer static_wi8_ai8: per-channel int8 weights, int8 activations "
                "and I/O)")
    transformer = find_transformer(source.module)
    summary = f"{what}, {calibration.describe()}{head_note(request, scope)}"
    if transformer is not None:
        summary += f"; {transformer.describe()} (LayerNorm, Softmax and GELU run in int8 too)"
    return QuantizeResult(artifact=artifact, summary=summary)
