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
On x86 CPUs without VNNI (AVX2 only: many edge boxes, AMD before Zen 4) the U8S8 kernels add pairs of
u8·s8 products in int16 (``vpmaddubsw``), which saturates; weights are therefore quantised to 7 bits
(``reduce_range``), which keeps those sums in range on every CPU. Measured on an AVX2-only AMD EPYC
(YOLO-layout detector, head in float, 16 images): detection agreement with the source mAP50 0.504 with
8-bit weights, 0.929 with 7-bit; on an Intel Xeon with AVX-512 VNNI and AMX, where nothing saturates, 0.886 and
0.929, and a ResNet-18 on the digits agreed 99.6 % either way (`scripts/int8_weight_bits.py`): 7 bits cost nothing
measurable. TensorRT's symmetric int8 path keeps 8-bit weights (no such kernel).

Transformers (`transformer.find_transformer`: attention in the graph) get Q/DQ only on the inputs of
their matrix products (Conv, MatMul, Gemm, Q·Kᵀ included) and none on their outputs, so LayerNorm,
Softmax, GELU and the residual adds compute on float tensors; those nodes are named in the manifest
(`FLOAT_NODES_NOTE`) and checked on the quantised graph. Measured on a 4-block ViT trained on the
digits (360 test images): relative logit error vs FP32 0.051 with ORT's default op set (which also
quantises LayerNorm, Softmax, Add, Mul), 0.022 with matrix products only, 0.017 with their outputs
float too (chosen; top-1 agreement 0.994 → 0.997); also keeping Q·Kᵀ and attention·V float gave
0.014 but one more test error, for less int8 work. On ViT-B/16 at 224 px (random init, 16 images) the
default op set gave relative logit error 0.43, these settings 0.037, at 84 vs 278 ms FP32 (1 thread). ``quant_pre_process``'s symbolic shape inference
asserts on torchvision's attention reshapes, so it is retried without it (ONNX shape inference).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from ..._optional import require
from ...errors import CompressionError, ConfigError
from ...export.base import ExportArtifact, package_version
from ...types import Format
from ..calibration import ort_calibration_reader
from .base import QuantizeRequest, QuantizeResult, detection_output, head_note, ignored_note, write_source_onnx
from .head_scope import HeadScope, onnx_head_scope, verify_onnx_head_float
from .scope import resolve_ignored_scope
from .transformer import (
    FLOAT_NODES_NOTE,
    TRANSFORMER_QUANTIZED_OPS,
    TransformerFloat,
    find_transformer,
    transformer_float_nodes,
    verify_onnx_transformer_float,
)

FORMAT = Format.ONNX
MODEL_FILE = "model.onnx"
#: Images per calibration run (MinMax ranges are the same whatever the grouping).
CALIBRATION_BATCH = 16


def quantize_onnx(source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult:
    """Write a Q/DQ INT8 ``model.onnx`` into `directory`, calibrated on `request.calibration`."""
    if request.scheme != "w8a8":
        raise ConfigError(f"ONNX Runtime INT8 here is w8a8; {request.scheme} is a TFLite option. Drop it or use format tflite.")
    artifact, scope, transformer = write_qdq_onnx(
        source, directory / MODEL_FILE, request=request, symmetric_activations=False
    )
    summary = (
        f"ONNX Runtime static INT8 (QDQ, per-channel 7-bit int8 weights, MinMax uint8 activations), "
        f"{request.calibration.describe()}{ignored_note(request.ignored_scope)}{head_note(request, scope)}"
        f"{transformer.note() if transformer is not None else ''}"
    )
    extra = {FLOAT_NODES_NOTE: transformer.node_list()} if transformer is not None else {}
    return QuantizeResult(artifact=artifact, summary=summary, notes=extra)


class QdqOnnx(NamedTuple):
    """A Q/DQ file written by `write_qdq_onnx`: its artifact, the detection head kept in float, the transformer ops
    kept in float (each None when not applicable)."""

    artifact: ExportArtifact
    head: HeadScope | None
    transformer: TransformerFloat | None


def write_qdq_onnx(source: Any, path: Path, *, request: QuantizeRequest, symmetric_activations: bool) -> QdqOnnx:
    """Quantise `source` to a Q/DQ ONNX file at `path`.

    `symmetric_activations` (int8, zero point 0) is what TensorRT requires of Q/DQ graphs. A transformer
    (see `transformer.find_transformer`) gets Q/DQ only on its matrix products (`TRANSFORMER_QUANTIZED_OPS`);
    LayerNorm, Softmax, GELU and the residual adds run in float and are named in the result.
    """
    onnx = require("onnx", extra="onnx", what="onnx")
    require("onnxruntime", extra="onnx", what="ONNX Runtime")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edgevision-quant-") as scratch:
        float_path = Path(scratch) / "float.onnx"
        prepared_path = Path(scratch) / "prepared.onnx"
        artifact = write_source_onnx(source, float_path)
        _prepare(quant_pre_process, float_path, prepared_path)
        prepared = onnx.load(str(prepared_path), load_external_data=False).graph
        transformer = find_transformer(prepared)
        float_ops = transformer_float_nodes(prepared) if transformer is not None else ()
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
                    reduce_range=not symmetric_activations,  # 7-bit weights: see the module docstring
                    activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                    weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                    op_types_to_quantize=list(TRANSFORMER_QUANTIZED_OPS) if transformer is not None else None,
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={
                        "ActivationSymmetric": symmetric_activations, "WeightSymmetric": True,
                        # a transformer's matrix products hand float to Softmax, LayerNorm and the residual adds
                        "OpTypesToExcludeOutputQuantization": list(TRANSFORMER_QUANTIZED_OPS) if transformer is not None else [],
                    },
                )
        except Exception as exc:
            raise CompressionError(f"ONNX Runtime could not quantise the model to INT8: {_first_line(exc)}") from exc
        kept = TransformerFloat(pattern=transformer, nodes=float_ops) if transformer is not None else None
        if scope is not None or kept is not None:
            quantised = onnx.load(str(path), load_external_data=False).graph
            if scope is not None:
                verify_onnx_head_float(quantised, scope)
            if kept is not None:
                verify_onnx_transformer_float(quantised, kept)
    versions = {
        **artifact.versions, "onnxruntime": package_version("onnxruntime"),
        "calibration_images": str(len(request.calibration)),
    }
    return QdqOnnx(replace(artifact, model_files=(path.name,), versions=versions), scope, kept)


def _prepare(quant_pre_process: Any, float_path: Path, prepared_path: Path) -> None:
    """``quant_pre_process``; again without symbolic shape inference where that fails (it asserts on the
    batch-dependent Reshape of torchvision's attention), since ONNX's own shape inference suffices for QDQ.

    Runs in the scratch folder: a failed symbolic inference leaves ``sym_shape_infer_temp.onnx`` in the
    working directory, which must not be the user's."""
    with contextlib.chdir(prepared_path.parent):
        _prepare_here(quant_pre_process, float_path.resolve(), prepared_path.resolve())


def _prepare_here(quant_pre_process: Any, float_path: Path, prepared_path: Path) -> None:
    try:
        with _quiet():
            quant_pre_process(str(float_path), str(prepared_path))
    except Exception as exc:  # noqa: BLE001 - retried below; if that fails too, this first error is reported
        (prepared_path.parent / "sym_shape_infer_temp.onnx").unlink(missing_ok=True)
        try:
            with _quiet():
                quant_pre_process(str(float_path), str(prepared_path), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - re-raised as CompressionError
            raise CompressionError(
                f"ONNX Runtime could not prepare the graph for quantisation: {_first_line(exc)}. "
                "Check that the model runs in ONNX Runtime at FP32 first."
            ) from exc

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
