"""INT8 for OpenVINO: NNCF post-training quantisation of the OpenVINO model.

The model reaches OpenVINO through the same FP32 ONNX graph the other quantisers use, so node
names follow torch module paths ("/fc/Gemm/WithoutBiases") and the ignored scope maps the same
way (OpenVINO's direct torch conversion renames fused convolutions "Multiply_1234"). With a
validation set and `max_drop`, ``nncf.quantize_with_accuracy_control`` ranks layers by their
effect on accuracy and returns the most sensitive ones to float until the drop is within budget.

Weights are quantised to 7 bits everywhere (``overflow_fix=ENABLE``; NNCF's default does only the first layer):
on x86 CPUs without VNNI (AVX2 only) OpenVINO's int8 kernels add u8·s8 product pairs in int16, which saturates
with 8-bit weights. Measured on an AVX2-only AMD EPYC (a hand-made ONNX classifier with large logits, 300 images):
top-1 agreement with the source 89.3 % with the default, 100 % with 7-bit weights.

Detectors: the head scope (`head_scope.openvino_head_scope`, walked on the converted ov.Model) joins
the ignored scope unless `head="plain"`, the saved IR is checked to hold no FakeQuantize or int8 weight
inside it, and the preset is MIXED (symmetric weights, asymmetric activations: hardswish/SiLU outputs
are not ReLU's non-negative range). Accuracy control then validates on COCO mAP50-95.

Transformers (`transformer.find_transformer`: attention in the graph) are quantised with
``model_type=nncf.ModelType.TRANSFORMER`` (NNCF's transformer patterns, symmetric activations into
activation×activation MatMuls, MIXED preset) and SmoothQuant on MatMuls at `SMOOTH_QUANT_MATMUL_ALPHA`;
the LayerNorm (MVN), GELU, Softmax and fused-attention ops that no FakeQuantize feeds are named in the
manifest (a ViT: every MVN and GELU; Swin-T: also 2 of its 12 Softmax). Measured on a 4-block ViT trained on the digits (360 test images, relative logit error vs
FP32 / top-1 agreement): CNN settings 0.044 / 0.997, TRANSFORMER without SmoothQuant 0.033 / 0.997,
with SmoothQuant α 0.95 0.025 / 1.000 (kept), α 0.5 0.042 / 0.997. ViT-B/16 at 224 px (random init, 16
images): CNN settings 0.43, TRANSFORMER 0.035 without SmoothQuant and 0.030 with it (99 vs 298 ms FP32).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..._optional import require
from ...bundle import InputSpec
from ...data.folder import ImageFolder
from ...errors import CompressionError, ConfigError
from ...export.base import package_version
from ...preprocess import preprocess_batch
from ...types import Format, Layout, Precision
from ..calibration import nncf_dataset
from .base import (
    AccuracyControl,
    QuantizeRequest,
    QuantizeResult,
    detection_output,
    head_note,
    ignored_note,
    write_source_onnx,
)
from .head_scope import HeadScope, openvino_head_scope, verify_openvino_head_float
from .scope import resolve_ignored_scope
from .transformer import FLOAT_NODES_NOTE, TransformerFloat, TransformerPattern, find_transformer, openvino_float_ops

FORMAT = Format.OPENVINO
#: Upper bound on NNCF's accuracy-restoring iterations (each reverts one group of layers to float).
MAX_RESTORE_ITERATIONS = 20
#: SmoothQuant's alpha for a transformer's MatMuls (NNCF's own default; -1 switches it off). See the module docstring.
SMOOTH_QUANT_MATMUL_ALPHA = 0.95


def quantize_openvino(source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult:
    """Write an INT8 IR (model.xml + model.bin) into `directory`."""
    ov = require("openvino", extra="openvino", what="OpenVINO")
    nncf = require("nncf", extra="compress", what="NNCF")
    from ...export.openvino import save_ir

    with tempfile.TemporaryDirectory(prefix="edgevision-nncf-") as scratch:
        onnx_path = Path(scratch) / "model.onnx"
        onnx_artifact = write_source_onnx(source, onnx_path)
        if onnx_artifact.layout is not Layout.NCHW:
            raise ConfigError("edgevision's OpenVINO bundles take NCHW input; this model takes NHWC. Use format onnx.")
        if request.scheme != "w8a8":
            raise ConfigError(f"OpenVINO INT8 here is w8a8; {request.scheme} is a TFLite option. Drop it or use format tflite.")
        onnx = require("onnx", extra="onnx", what="onnx")
        transformer = find_transformer(onnx.load(str(onnx_path), load_external_data=False))
        float_model = ov.convert_model(str(onnx_path))
        scope = openvino_head_scope(float_model, detection_output(source)) if request.keep_head_float else None
        ignored = _ignored_scope(nncf, float_model, request.ignored_scope, scope)
        calibration = nncf_dataset(request.calibration)
        detector = request.head is not None
        preset = nncf.QuantizationPreset.MIXED if detector else None
        options = _nncf_options(nncf, transformer)
        try:
            with warnings.catch_warnings(), _quiet_nncf():
                warnings.simplefilter("ignore")
                if request.accuracy_control is None:
                    quantized = nncf.quantize(
                        float_model, calibration, subset_size=len(request.calibration), ignored_scope=ignored,
                        preset=preset, **options,
                    )
                    how = "NNCF PTQ INT8"
                else:
                    quantized = _quantize_with_accuracy_control(
                        nncf, float_model, calibration, request.accuracy_control, len(request.calibration), ignored,
                        source=source, preset=preset, options=options,
                    )
                    metric = {"detect": "mAP50-95", "segment": "mIoU"}.get(getattr(source, "task", "classify"), "top-1")
                    how = (f"NNCF PTQ INT8 with accuracy control (max {metric} drop "
                           f"{request.accuracy_control.max_drop * 100:.2f} pt)")
                how += " (mixed preset)" if detector else ""
        except ConfigError:
            raise
        except Exception as exc:
            raise CompressionError(f"NNCF could not quantise the model: {_first_line(exc)}") from exc
        artifact = save_ir(quantized, directory, precision=Precision.INT8)
    if scope is not None:
        verify_openvino_head_float(ov.Core().read_model(str(directory / artifact.model_files[0])), scope)
    restored = _float_layers(quantized) if request.accuracy_control is not None else ""
    kept = None
    if transformer is not None:
        kept = TransformerFloat(
            pattern=transformer, nodes=openvino_float_ops(quantized), engine_note=_transformer_note(options)
        )
    summary = (f"{how}, {request.calibration.describe()}{ignored_note(request.ignored_scope)}"
               f"{head_note(request, scope)}{restored}{kept.note() if kept is not None else ''}")
    versions = {**onnx_artifact.versions, **artifact.versions, "nncf": package_version("nncf")}
    notes = {FLOAT_NODES_NOTE: kept.node_list()} if kept is not None else {}
    return QuantizeResult(artifact=replace(artifact, versions=versions), summary=summary, notes=notes)


def _nncf_options(nncf: Any, transformer: TransformerPattern | None) -> dict[str, Any]:
    """NNCF's settings: 7-bit weights everywhere (`overflow_fix`, see the module docstring) and, for a transformer,
    its model type and SmoothQuant with `SMOOTH_QUANT_MATMUL_ALPHA`."""
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
        OverflowFix,
    )

    if transformer is None:
        return {"advanced_parameters": AdvancedQuantizationParameters(overflow_fix=OverflowFix.ENABLE)}
    alphas = AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_MATMUL_ALPHA)
    return {
        "model_type": nncf.ModelType.TRANSFORMER,
        "advanced_parameters": AdvancedQuantizationParameters(
            overflow_fix=OverflowFix.ENABLE, smooth_quant_alphas=alphas
        ),
    }


def _transformer_note(options: dict[str, Any]) -> str:
    alpha = options["advanced_parameters"].smooth_quant_alphas.matmul
    smooth = f"SmoothQuant alpha {alpha} on MatMuls" if alpha >= 0 else "no SmoothQuant"
    return f"NNCF model_type=TRANSFORMER, {smooth}"


def _ignored_scope(nncf: Any, model: Any, ignored_scope: tuple[str, ...], head: HeadScope | None) -> Any:
    """NNCF's IgnoredScope: the user's modules plus the detection head's ops (None when both are empty)."""
    names: list[str] = []
    if ignored_scope:
        ops = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() not in {"Constant", "Parameter", "Result"}]
        names = resolve_ignored_scope(ignored_scope, ops, engine="OpenVINO")
    if head is not None:
        names += [name for name in head.nodes if name not in names]
    return nncf.IgnoredScope(names=names) if names else None


def _quantize_with_accuracy_control(
    nncf: Any, model: Any, calibration: Any, control: AccuracyControl, subset_size: int, ignored: Any, *, source: Any,
    preset: Any, options: dict[str, Any],
) -> Any:
    """NNCF accuracy control: top-1 on an ImageFolder for classifiers, COCO mAP50-95 for detectors, mIoU on a mask
    split for segmenters."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    if getattr(source, "segmentation", None) is not None:
        from .openvino_segment import segmentation_validation

        validation, validate = segmentation_validation(nncf, source, control.validation)
    elif getattr(source, "detection", None) is not None:
        from .openvino_detect import detection_validation

        validation, validate = detection_validation(nncf, source, control.validation)
    else:
        folder = ImageFolder.open(control.validation, labels=source.labels)
        height, width = source.preprocess.size
        spec = InputSpec(name="input", shape=(1, 3, height, width))
        items = [(preprocess_batch([image], source.preprocess, spec), label) for image, label in folder]
        validation, validate = nncf.Dataset(items, lambda item: item[0]), _top1
    return nncf.quantize_with_accuracy_control(
        model, calibration, validation, validate, max_drop=control.max_drop, subset_size=subset_size,
        ignored_scope=ignored, preset=preset, model_type=options.get("model_type"),
        advanced_quantization_parameters=options["advanced_parameters"],
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(max_num_iterations=MAX_RESTORE_ITERATIONS),
    )


def _top1(compiled_model: Any, items: Any) -> tuple[float, list[float]]:
    """NNCF's validation_fn: top-1 accuracy and the per-image hit (which ranks layers by harm)."""
    output = compiled_model.outputs[0]
    hits = [float(np.argmax(compiled_model(batch)[output]) == label) for batch, label in items]
    return (float(np.mean(hits)) if hits else 0.0), hits


def float_weight_layers(model: Any) -> list[str]:
    """Convolutions/MatMuls whose weights are still a float Constant (quantised ones decompress int8)."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in {"Convolution", "GroupConvolution", "MatMul"}:
            continue
        weights = op.input_value(1).get_node()
        if weights.get_type_name() == "Constant" and weights.get_output_element_type(0).is_real():
            names.append(op.get_friendly_name())
    return names


def _float_layers(model: Any) -> str:
    """', N layer(s) left in float' (ignored scope plus any that accuracy control reverted)."""
    names = float_weight_layers(model)
    return f", {len(names)} layer(s) left in float" if names else ""


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF logs each step at INFO and draws its own rich progress bars on stdout; show only its warnings."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip() and not line.startswith("Exception from")]
    return (lines[0] if lines else type(exc).__name__)[:300]
