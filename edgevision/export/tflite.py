"""Export to TFLite (LiteRT) straight from PyTorch with litert-torch: FP32, FP16 weights, or full INT8.

Route: ``torch.export`` → litert-torch lowering (StableHLO/TFL MLIR) → ``.tflite`` flatbuffer. No
TensorFlow and no ONNX hop: onnx2tf would need TensorFlow, pin old numpy/onnx/protobuf and fetch
calibration data from the internet while converting. The model is wrapped with
``litert_torch.to_channel_last_io`` so it takes NHWC input; the converter's layout pass folds
that permute into the convolutions, so the file starts with a convolution, not a TRANSPOSE.

FP16 stores weights as float16 (ai-edge-quantizer "float casting"); inputs, outputs and compute
stay float32. INT8 (`quantize_tflite_int8`, used by the compression stage) is full-integer:
int8 weights, activations, input and output; the TFLite runtime (de)quantises at the edges.
The batch is fixed at 1: TFLite's CPU kernels are tuned for it and the runtime splits batches.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from .._quiet import native_stderr_captured
from ..errors import ConfigError, ExportError
from ..model import TrainedModel
from ..types import Layout, Precision, Task
from .base import ExportArtifact, package_version
from .tflite_rewrites import linear_on_rows

PRECISIONS = frozenset({Precision.FP32, Precision.FP16})
MODEL_FILE = "model.tflite"

#: What to use instead, for operators segmentation heads use that litert-torch cannot lower (checked with
#: litert-torch 0.10: AdaptiveAvgPool2d at any size, bilinear resize with align_corners True or False and bicubic
#: resize all convert; these do not).
OPERATOR_HINTS = {
    "aten.adaptive_max_pool2d": "nn.AdaptiveMaxPool2d: at the bundle's fixed input size use nn.MaxPool2d with "
    "kernel_size = stride = feature size / pooled size",
    "aten._upsample_bilinear2d_aa": "F.interpolate(..., antialias=True): drop antialias (plain bilinear converts)",
}

#: The converter's verifier rejecting a matrix product it lowered itself: litert-torch 0.10 gives a Linear on a 1×1
#: feature map (the last stage of ConvNeXt-T or Swin-T at 32 px input) a rank-4 ``tfl.batch_matmul``.
_BATCH_MATMUL_RANK = re.compile(r"'tfl\.batch_matmul' op found invalid output rank")
_BATCH_MATMUL_HINT = (
    "litert-torch mis-lowers a matrix product on a 1×1 feature map (a ConvNeXt's or Swin's last stage at 32 px). "
    "ConvNeXt-T and Swin-T convert at 64 px: export at a larger input size, or to onnx or openvino"
)

#: Converter messages that name an operator it cannot lower (torch-side, then MLIR-side).
_UNSUPPORTED_OPERATOR_PATTERNS = (
    re.compile(r"Lowering not found: ([\w.:]+)"),
    re.compile(r"failed to legalize operation '([^']+)'"),
    re.compile(r"'([\w.]+)' op is neither a custom op nor a flex op"),
)


def export_tflite(model: TrainedModel, directory: Path, *, precision: Precision) -> ExportArtifact:
    """Write ``model.tflite`` (NHWC input, batch 1) into `directory`."""
    path = directory / MODEL_FILE
    write_fp32_tflite(model, path)
    versions = _converter_versions()
    if precision is Precision.FP16:
        cast_weights_to_fp16(path)
        versions["ai-edge-quantizer"] = package_version("ai-edge-quantizer")
    return _artifact(path, model, versions)


def write_fp32_tflite(model: TrainedModel, path: Path) -> None:
    """Convert `model` to an FP32 TFLite file taking NHWC input; ExportError names unsupported ops."""
    torch = require("torch", extra="compress", what="PyTorch")
    with native_stderr_captured():  # importing TensorFlow/torchao prints native start-up lines (oneDNN, absl)
        litert_torch = require("litert_torch", extra="tflite-export", what="litert-torch")
    height, width = model.input_size
    example = (torch.zeros(1, height, width, 3),)

    def convert(module: Any) -> None:
        nhwc_model = litert_torch.to_channel_last_io(module, args=[0]).eval()
        with _quiet_converter():
            litert_torch.convert(nhwc_model, example).export(str(path))

    try:
        try:
            convert(model.module.eval())
        except Exception as exc:
            if not _BATCH_MATMUL_RANK.search(str(exc)):
                raise
            # a Linear on a 1×1 feature map (ConvNeXt's last stage at 32 px) was mis-lowered: retry it on rows
            rewritten = linear_on_rows(model.module.eval(), torch.zeros(1, 3, height, width))
            if rewritten is model.module:
                raise
            convert(rewritten)
    except Exception as exc:
        raise _conversion_error(exc) from exc


def cast_weights_to_fp16(path: Path) -> None:
    """Store the weights of `path` as float16 in place; I/O and compute stay float32."""
    require("ai_edge_quantizer", extra="tflite-export", what="ai-edge-quantizer")
    from ai_edge_quantizer import qtyping, quantizer

    engine = quantizer.Quantizer(str(path))
    engine.add_weight_only_config(
        regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
        algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING,
    )
    try:
        with _quiet_converter():
            result = engine.quantize(enable_progress_report=False)
    except Exception as exc:
        raise ExportError(f"ai-edge-quantizer could not cast the weights to FP16: {_first_line(exc)}") from exc
    path.write_bytes(bytes(result.quantized_model))


def quantize_tflite_int8(
    model: TrainedModel,
    directory: Path,
    calibration_batches: Iterable[np.ndarray],
    *,
    max_samples: int = 300,
    activation_bits: int = 8,
    float_scope: Callable[[Path], Any] | None = None,
    float_io: bool = False,
) -> ExportArtifact:
    """Write an integer ``model.tflite`` into `directory`: full-integer INT8 unless a float scope is kept.

    `calibration_batches` yields preprocessed float32 batches in NCHW (what `preprocess_batch`
    returns for the model's input spec); up to `max_samples` images set the activation ranges.
    Weights are per-channel symmetric int8, activations per-tensor int8 (ai-edge-quantizer
    ``static_wi8_ai8`` on the FP32 file) or int16 with `activation_bits=16` (``static_wi8_ai16``).
    `float_scope(fp32_path)` returns the ops to leave in float (a `head_scope.HeadScope`, whose
    `tensors` name them): the recipe selects each by its output tensor name with the NO_QUANTIZE
    algorithm, and `verify(path)` on the scope is the caller's. `float_io` keeps the graph's input and
    output float32 (QUANTIZE/DEQUANTIZE at the edges; a detect bundle's contract). The samples are held in memory
    (the quantizer passes over them twice). The caller runs parity, as for any format.
    """
    require("ai_edge_quantizer", extra="tflite-export", what="ai-edge-quantizer")
    from ai_edge_quantizer import qtyping, quantizer

    if activation_bits not in (8, 16):
        raise ConfigError(f"TFLite activations are int8 or int16, got {activation_bits} bits.")
    path = directory / MODEL_FILE
    float_path = directory / "model.fp32.tflite"
    nhwc_samples = list(_nhwc_samples(model, calibration_batches, max_samples))  # bad data fails before converting
    write_fp32_tflite(model, float_path)
    try:
        engine = quantizer.Quantizer(str(float_path))
        engine.add_static_config(
            regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, activation_num_bits=activation_bits,
            weight_num_bits=8,
        )
        scope = float_scope(float_path) if float_scope is not None else None
        if scope is not None:
            # an op's scope in ai-edge-quantizer is "out1;out2;": select the scope's ops by exact output names
            names = "|".join(re.escape(name) for name in scope.tensors)
            engine.update_quantization_recipe(
                regex=f"^(?:{names});", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE,
            )
        if float_io:
            for edge in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
                engine.update_quantization_recipe(
                    regex=".*", operation_name=edge, algorithm_key=quantizer.AlgorithmName.NO_QUANTIZE
                )
        signature, input_name = _signature_input(float_path)
        samples = [{input_name: sample} for sample in nhwc_samples]
        try:
            with _quiet_converter():
                ranges = engine.calibrate({signature: samples}, num_threads=os.cpu_count() or 1)
                widened = widen_constant_ranges(ranges)
                result = engine.quantize(ranges, enable_progress_report=False)
        except Exception as exc:
            raise ExportError(f"ai-edge-quantizer could not quantise the model to INT8: {_first_line(exc)}") from exc
        path.write_bytes(bytes(result.quantized_model))
    finally:
        float_path.unlink(missing_ok=True)
    versions = {
        **_converter_versions(), "ai-edge-quantizer": package_version("ai-edge-quantizer"),
        "int8_recipe": f"static_wi8_ai{activation_bits}" + (" + float head" if scope is not None else ""),
        "calibration_samples": str(len(samples)),
    }
    if widened:
        versions["int8_constant_activations"] = f"{len(widened)} widened to a {MIN_ACTIVATION_RANGE:g} range"
    return _artifact(path, model, versions)


#: Calibrated ranges narrower than this are constant activations (see `widen_constant_ranges`).
CONSTANT_RANGE = 1e-6
MIN_ACTIVATION_RANGE = 1.0


def widen_constant_ranges(ranges: dict[str, dict[str, Any]]) -> list[str]:
    """Give every activation that was constant over the calibration set a usable range, in place; their names.

    A ReLU that never fires on the calibration images (MobileNetV3's squeeze-and-excitation `fc1` after
    training, for one) calibrates to [0, 0]; ai-edge-quantizer then picks a 4e-12 scale, and the next
    layer's int32 bias (scaled by input × weight scale) overflows: measured on the demo segmenter, the
    SE gates read 0 instead of hardsigmoid(≈3), val mIoU fell from 0.63 to 0.10 and XNNPACK refused
    the graph. Widening the range to `MIN_ACTIVATION_RANGE` keeps the constant exact (0 stays
    representable) and the bias in range.
    """
    widened = []
    for name, stats in ranges.items():
        if not isinstance(stats, dict) or "min" not in stats or "max" not in stats:
            continue
        low, high = np.asarray(stats["min"], dtype=np.float32), np.asarray(stats["max"], dtype=np.float32)
        constant = (high - low) < CONSTANT_RANGE
        if np.any(constant):
            stats["max"] = np.where(constant, low + MIN_ACTIVATION_RANGE, high).astype(np.float32)
            widened.append(name)
    return widened


def unsupported_operators(exc: BaseException) -> list[str]:
    """Operator names the converter reported it cannot lower, from `exc` and its causes."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for pattern in _UNSUPPORTED_OPERATOR_PATTERNS:
            found += [name for name in pattern.findall(str(exc)) if name not in found]
        exc = exc.__cause__ or exc.__context__
    return found


def _conversion_error(exc: BaseException) -> ExportError:
    operators = unsupported_operators(exc)
    if operators:
        hints = [OPERATOR_HINTS[key] for key in OPERATOR_HINTS if any(op.startswith(key + ".") for op in operators)]
        instead = f" Instead of {'; instead of '.join(hints)}." if hints else ""
        return ExportError(
            f"litert-torch cannot convert operator(s) {', '.join(operators)} to TFLite.{instead} Rewrite that part of "
            "the model with common layers, or export to onnx or openvino instead."
        )
    mislowered = _BATCH_MATMUL_RANK.search(str(exc))
    if mislowered:
        return ExportError(f"{_BATCH_MATMUL_HINT} (converter: {mislowered.group(0)}).")
    return ExportError(f"litert-torch could not convert the model to TFLite: {_first_line(exc)}")


def _artifact(path: Path, model: TrainedModel, versions: dict[str, str]) -> ExportArtifact:
    """Describe the written file after checking it takes the NHWC batch-1 input the manifest will state."""
    interpreter = _interpreter(path)
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    height, width = model.input_size
    if tuple(input_detail["shape"]) != (1, height, width, 3):
        raise ExportError(
            f"The TFLite model's input is {tuple(input_detail['shape'])}, expected NHWC (1, {height}, {width}, 3). "
            "The model must take one 3-channel image tensor."
        )
    if getattr(model, "task", Task.CLASSIFY) is Task.SEGMENT:
        from ..tasks.segment import check_class_scores

        try:  # the input is NHWC; the per-pixel scores must stay (1, classes, h, w) as the manifest says
            check_class_scores(tuple(output_detail["shape"]), model.num_classes, model.input_size, model="The TFLite model")
        except ConfigError as exc:
            raise ExportError(f"{exc} (litert-torch changed the output layout: export to onnx or openvino)") from None
    return ExportArtifact(
        (MODEL_FILE,), input_detail["name"], output_detail["name"], layout=Layout.NHWC, dynamic_batch=False,
        versions=versions,
    )


def _nhwc_samples(model: TrainedModel, batches: Iterable[np.ndarray], limit: int) -> Iterator[np.ndarray]:
    height, width = model.input_size
    count = 0
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (3, height, width):
            raise ConfigError(
                f"Calibration batches must be preprocessed NCHW float arrays (N, 3, {height}, {width}), "
                f"got shape {batch.shape}."
            )
        for sample in batch.transpose(0, 2, 3, 1):
            if count == limit:
                return
            count += 1
            yield np.ascontiguousarray(sample[None])
    if count == 0:
        raise ConfigError("INT8 quantisation needs calibration images: calibration_batches yielded none.")


def _signature_input(path: Path) -> tuple[str, str]:
    signatures = _interpreter(path).get_signature_list()
    key = next(iter(signatures))
    return key, signatures[key]["inputs"][0]


def _interpreter(path: Path):
    require("ai_edge_litert", extra="tflite", what="LiteRT (ai-edge-litert)")
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with native_stderr_captured():
        interpreter = Interpreter(
            model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interpreter.allocate_tensors()
    return interpreter


def _converter_versions() -> dict[str, str]:
    return {
        "torch": package_version("torch"), "litert-torch": package_version("litert-torch"),
        "litert-converter": package_version("litert-converter"), "ai-edge-litert": package_version("ai-edge-litert"),
    }


@contextlib.contextmanager
def _quiet_converter() -> Iterator[None]:
    """Silence litert-torch's progress printing and ai-edge-quantizer's progress bars for one call."""
    previous = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), native_stderr_captured():
            warnings.simplefilter("ignore")
            yield
    finally:
        if previous is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = previous


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
