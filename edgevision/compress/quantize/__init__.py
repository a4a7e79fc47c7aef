"""Quantise a model for one engine: INT8 from calibration images, or FP16, as a checked bundle.

One module per engine, dispatched through `QUANTIZERS`; this module holds the shared steps
(temp dir, manifest, accuracy guard, parity, atomic rename) so no engine can skip them. The
source is a `TrainedModel` (torch) or an `OnnxModel` (an .onnx file from any framework).

INT8 has no logit tolerance: parity is top-1 agreement with the source model on real images
(the validation folder, else the calibration folder), at least `INT8_MIN_TOP1_AGREEMENT`; for a
detector, detection agreement mAP50 on the validation (else calibration) split, and the guard is
mAP50-95 through the engine. A detector's head (prediction layers + decoding) stays in float by
default (`head="float"`, see `head_scope`); `head="plain"` quantises everything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...bundle import Bundle, atomic_directory
from ...errors import ConfigError
from ...export import EXPORTERS
from ...export.parity import DEFAULT_PARITY, ParityConfig, open_parity_data
from ...export.writer import AccuracyCheck, BundleChecks, finish_bundle
from ...registry import Registry
from ...source import ModelSource, ReferenceOutputs, check_source
from ...types import Format, Precision, Task, parse_one_enum
from ..calibration import CalibrationConfig, CalibrationSet
from ..guard import check_accuracy, check_max_drop
from ..onnx_input import build_onnx_float_bundle
from .base import AccuracyControl, HeadPolicy, Quantizer, QuantizeRequest, QuantizeResult, Scheme

QUANTIZERS: Registry[Quantizer] = Registry("quantizer", entry_point_group="edgevision.quantizers")
QUANTIZERS.register("onnxruntime", "edgevision.compress.quantize.onnx:quantize_onnx")
QUANTIZERS.register("openvino", "edgevision.compress.quantize.openvino:quantize_openvino")
QUANTIZERS.register("tflite", "edgevision.compress.quantize.tflite:quantize_tflite")
QUANTIZERS.register("tensorrt", "edgevision.compress.quantize.tensorrt:quantize_tensorrt")

#: The quantiser used for each format when none is named.
DEFAULT_QUANTIZER = {Format.ONNX: "onnxruntime", Format.OPENVINO: "openvino", Format.TFLITE: "tflite"}

#: Least top-1 agreement with the source model an INT8 bundle must reach on real images.
INT8_MIN_TOP1_AGREEMENT = 0.98


def quantize(
    model: ModelSource,
    output: str | os.PathLike[str],
    *,
    format: Format | str,
    precision: Precision | str = Precision.INT8,
    calibration: CalibrationConfig | None = None,
    ignored_scope: tuple[str, ...] = (),
    validation: str | os.PathLike[str] | None = None,
    max_accuracy_drop: float | None = None,
    quantizer: str | None = None,
    parity: ParityConfig | None = None,
    overwrite: bool = False,
    head: HeadPolicy | None = None,
    scheme: Scheme = "w8a8",
) -> Bundle:
    """Write `model` (TrainedModel or OnnxModel) quantised for `format` as a bundle at `output`.

    INT8 needs `calibration` (an ImageFolder, or for a detector its COCO train split, through the
    model's preprocessing). FP16 needs none. Detectors: `head` "float" (the default) keeps the
    detection head in float, "plain" quantises it too; `scheme="w8a16"` (TFLite) keeps int16
    activations; `validation` is a COCO split and `max_accuracy_drop` an mAP50-95 fraction. `ignored_scope` names torch modules (e.g. "fc") to keep in float. With `validation`
    (an ImageFolder) and `max_accuracy_drop` (a fraction: 0.015 = 1.5 points of top-1) the bundle
    is evaluated through its engine and an AccuracyBudgetError is raised — leaving nothing at
    `output` — if it lost more. `quantizer` picks the engine's quantiser (default: the
    format's; "tensorrt" makes a TensorRT INT8 ONNX bundle). `parity` defaults to top-1
    agreement ≥ INT8_MIN_TOP1_AGREEMENT on the validation (else calibration) images.
    """
    model = check_source(model, what="quantize")
    fmt = parse_one_enum(Format, format, option="format")
    prec = parse_one_enum(Precision, precision, option="precision")
    check_max_drop(max_accuracy_drop)
    if max_accuracy_drop is not None and validation is None:
        raise ConfigError(
            "max_accuracy_drop needs validation=<ImageFolder> (a detector: <COCO val split>) to measure accuracy on."
        )
    if isinstance(ignored_scope, str):
        raise ConfigError(f"ignored_scope takes a tuple of module names, e.g. ({ignored_scope!r},), not a string.")
    validation = Path(validation) if validation is not None else None
    head = _head_policy(model, head)
    if scheme not in ("w8a8", "w8a16"):
        raise ConfigError(f"scheme takes 'w8a8' or 'w8a16' (int8 weights, int8 or int16 activations), got {scheme!r}.")
    if prec is Precision.FP32:
        raise ConfigError("FP32 is not quantisation: use edgevision.export.export (or export_onnx_model for an ONNX model).")
    if prec is Precision.FP16:
        if calibration is not None or ignored_scope or scheme != "w8a8":
            raise ConfigError(
                "FP16 needs no calibration and keeps no layer in float: drop calibration/ignored_scope/scheme."
            )
        return build_float_bundle(
            model, output, format=fmt, precision=prec, parity=parity or ParityConfig(data=validation),
            validation=validation, max_accuracy_drop=max_accuracy_drop, overwrite=overwrite,
        )
    if calibration is None:
        where = "<COCO train split>" if model.task is Task.DETECT else "<ImageFolder>"
        raise ConfigError(f"INT8 needs calibration images: pass calibration=CalibrationConfig(data={where}).")
    name = quantizer or DEFAULT_QUANTIZER.get(fmt)
    if name is None:
        raise ConfigError(f"No INT8 quantiser for format {fmt.value}. Choose onnx, openvino or tflite.")
    quantize_fn = QUANTIZERS.get(name)
    made_for = QUANTIZERS.module_attribute(name, "FORMAT")
    if made_for is not None and made_for is not fmt:
        raise ConfigError(f"The {name} quantiser writes {made_for.value} bundles, not {fmt.value}; pass format={made_for.value}.")
    calibration_set = CalibrationSet(calibration, preprocess=model.preprocess)
    control = (
        AccuracyControl(validation=validation, max_drop=max_accuracy_drop)
        if validation is not None and max_accuracy_drop is not None else None
    )
    request = QuantizeRequest(
        calibration=calibration_set, ignored_scope=tuple(ignored_scope), accuracy_control=control, head=head,
        scheme=scheme,
    )
    parity = parity or (
        ParityConfig(data=validation, min_top1_agreement=INT8_MIN_TOP1_AGREEMENT)
        if validation is not None
        else ParityConfig(  # the calibration images themselves (same seeded subset)
            data=calibration.data, max_images=calibration.max_images, seed=calibration.seed,
            min_top1_agreement=INT8_MIN_TOP1_AGREEMENT,
        )
    )
    with atomic_directory(output, overwrite=overwrite) as workdir:
        result = quantize_fn(model, workdir, request=request)
        _finish(model, workdir, result, fmt, parity=parity, validation=validation, max_accuracy_drop=max_accuracy_drop)
    return Bundle.load(output)


def _head_policy(model: ModelSource, head: str | None) -> HeadPolicy | None:
    """"float" by default for detectors; classifiers have no detection head, so naming one is an error."""
    if model.task is not Task.DETECT:
        if head is not None:
            raise ConfigError(
                f"head={head!r} is for detectors (it keeps the box/score head in float); {model.name} is a "
                f"{model.task.value} model. Drop head, or keep its classifier in float with ignored_scope=('fc',)."
            )
        return None
    if head is None:
        return "float"
    if head not in ("float", "plain"):
        raise ConfigError(f"head takes 'float' (keep the detection head in float) or 'plain' (quantise it), got {head!r}.")
    return head  # type: ignore[return-value]


def build_float_bundle(
    model: ModelSource,
    output: str | os.PathLike[str],
    *,
    format: Format | str,
    precision: Precision | str,
    parity: ParityConfig = DEFAULT_PARITY,
    validation: Path | None = None,
    max_accuracy_drop: float | None = None,
    overwrite: bool = False,
) -> Bundle:
    """An FP32/FP16 bundle of a torch or ONNX model, with the same guard and parity steps as INT8."""
    model = check_source(model, what="build_float_bundle")
    fmt = parse_one_enum(Format, format, option="format")
    prec = parse_one_enum(Precision, precision, option="precision")
    if prec is Precision.INT8:
        raise ConfigError("INT8 needs calibration images: use edgevision.compress.quantize.quantize.")
    checks = BundleChecks(parity=parity, accuracy=_accuracy_check(model, validation, max_accuracy_drop, what=prec))
    if model.framework == "onnx":
        return build_onnx_float_bundle(model, output, format=fmt, precision=prec, checks=checks, overwrite=overwrite)
    if prec not in EXPORTERS.module_attribute(fmt.value, "PRECISIONS"):
        raise ConfigError(f"{fmt.value} export does not support {prec.value}.")
    open_parity_data(parity, task=model.task, labels=model.labels)
    with atomic_directory(output, overwrite=overwrite) as workdir:
        artifact = EXPORTERS.get(fmt.value)(model, workdir, precision=prec)
        note = "FP16 weights (float32 inputs and outputs)" if prec is Precision.FP16 else ""
        result = QuantizeResult(artifact=artifact, summary=note, file_precision=prec, engine_precision=prec)
        _finish(model, workdir, result, fmt, parity=parity, validation=validation, max_accuracy_drop=max_accuracy_drop)
    return Bundle.load(output)


def _finish(
    model: ModelSource,
    workdir: Path,
    result: QuantizeResult,
    fmt: Format,
    *,
    parity: ParityConfig,
    validation: Path | None,
    max_accuracy_drop: float | None,
) -> Bundle:
    """`finish_bundle` for a quantiser's result: its note, engine and precision; raising anywhere discards `workdir`."""
    notes = dict(model.notes)
    if result.summary:
        notes["quantize"] = result.summary
    notes.update(result.notes)
    hint = (
        " Use more representative calibration images or keep sensitive layers in float (ignored_scope)."
        if result.engine_precision is Precision.INT8 else ""
    )
    checks = BundleChecks(
        parity=parity, runtime=result.runtime, runtime_options=result.runtime_options, failure_hint=hint,
        accuracy=_accuracy_check(
            model, validation, max_accuracy_drop, what=result.engine_precision, runtime=result.runtime,
            options=result.runtime_options,
        ),
    )
    return finish_bundle(
        workdir, model, result.artifact, format=fmt, file_precision=result.file_precision,
        engine_precision=result.engine_precision, notes=notes, checks=checks,
    )


def _accuracy_check(
    model: ModelSource,
    validation: Path | None,
    max_accuracy_drop: float | None,
    *,
    what: Precision,
    runtime: str | None = None,
    options: object = None,
) -> AccuracyCheck | None:
    """The accuracy guard as a step of `finish_bundle`, or None when no budget was given."""
    if validation is None or max_accuracy_drop is None:
        return None

    def check(bundle: Bundle, reference: ReferenceOutputs) -> str:
        return check_accuracy(
            model, bundle, validation=validation, max_accuracy_drop=max_accuracy_drop, runtime=runtime,
            options=options, what=what.value.upper(), reference=reference,
        ).summary()

    return check


def int8_speed_verdict(fp32_result: Any, int8_result: Any) -> str:
    """One plain sentence comparing two BenchResult rows: is the INT8 bundle actually faster?

    INT8 is not always faster on a CPU: without VNNI/AMX int8 instructions, or for small
    models where Q/DQ overhead dominates, ONNX Runtime's INT8 can be slower than FP32.
    """
    fp32_ms, int8_ms = fp32_result.latency.p50_ms, int8_result.latency.p50_ms
    where = f"{int8_result.runtime}, {int8_result.threads or 'default'} thread(s), batch {int8_result.batch_size}"
    if fp32_ms <= 0 or int8_ms <= 0:
        raise ValueError(f"latencies must be positive, got fp32 {fp32_ms} ms and int8 {int8_ms} ms")
    ratio = fp32_ms / int8_ms
    numbers = f"INT8 p50 {int8_ms:.2f} ms vs FP32 {fp32_ms:.2f} ms ({where})"
    if ratio >= 1.1:
        return f"INT8 is {ratio:.1f}× faster than FP32: {numbers}."
    if ratio > 1 / 1.1:
        return f"INT8 is NOT meaningfully faster than FP32 here (within 10 %): {numbers}. Keep FP32 unless size matters."
    return f"INT8 is SLOWER than FP32 here ({1 / ratio:.1f}× slower): {numbers}. Ship FP32 (or FP16) for this engine."


__all__ = [
    "DEFAULT_QUANTIZER", "INT8_MIN_TOP1_AGREEMENT", "QUANTIZERS", "CalibrationConfig", "build_float_bundle",
    "int8_speed_verdict", "quantize",
]
