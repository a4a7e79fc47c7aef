"""INT8 for TensorRT (NVIDIA GPUs, Jetson): a calibrated INT8 engine, or a Q/DQ graph on TensorRT 11.

TensorRT 10 calibrates itself: the bundle keeps the FP32 ONNX file plus ``calibration.cache``
(the scales TensorRT's entropy calibrator computed from the calibration images, listed in the
manifest's model files), and the manifest says int8. An INT8 engine is built now and cached in the
bundle beside its key; the TensorRT runtime builds an INT8 engine from any such bundle by default
(from the cached engine on this GPU, else from calibration.cache on another GPU with the same
TensorRT). The ONNX file itself is fp32, so ONNX Runtime runs it in fp32 and says so.

TensorRT 11 removed calibration: there the bundle is a Q/DQ ONNX file with symmetric int8
activations (TensorRT's requirement), calibrated by ONNX Runtime on the same images, which any
TensorRT builds strongly typed on any GPU.

Detectors keep the head in float (unless `head="plain"`): on TensorRT 11 the Q/DQ graph simply has no
Q/DQ in the head (`write_qdq_onnx` excludes the walked scope, and verifies it); on TensorRT 10 the
head's ONNX node names go into the bundle's ``float_layers.json``, and every engine build pins those
layers to FP32 with ``OBEY_PRECISION_CONSTRAINTS`` (`edgevision.runtimes.tensorrt_precision`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..._optional import require
from ...runtimes.tensorrt_precision import FLOAT_LAYERS_FILE
from ...types import Format, Precision
from ..calibration import tensorrt_calibrator
from .base import QuantizeRequest, QuantizeResult, detection_output, head_note, ignored_note, write_source_onnx

FORMAT = Format.ONNX
MODEL_FILE = "model.onnx"
#: Images per calibration batch (TensorRT calibrates with one fixed batch shape).
CALIBRATION_BATCH = 8


def quantize_tensorrt(source: Any, directory: Path, *, request: QuantizeRequest) -> QuantizeResult:
    """INT8 for TensorRT in `directory`: see the module docstring for the two routes."""
    trt = require("tensorrt", extra="tensorrt", what="TensorRT")
    from ...runtimes.tensorrt import TensorRTOptions
    from ...runtimes.tensorrt_cache import STRONG_TYPING_ONLY_MAJOR, tensorrt_major
    from ...runtimes.tensorrt_calibration import CALIBRATION_CACHE

    if tensorrt_major(trt.__version__) >= STRONG_TYPING_ONLY_MAJOR:
        from .onnx import write_qdq_onnx

        artifact, scope, transformer = write_qdq_onnx(
            source, directory / MODEL_FILE, request=request, symmetric_activations=True
        )
        summary = (
            f"Q/DQ INT8 for TensorRT {trt.__version__} (symmetric int8 activations, per-channel weights, ONNX Runtime "
            f"MinMax calibration), {request.calibration.describe()}{ignored_note(request.ignored_scope)}"
            f"{head_note(request, scope)}{transformer.note() if transformer is not None else ''}"
        )
        return QuantizeResult(artifact=artifact, summary=summary, runtime="tensorrt")
    if request.ignored_scope:
        from ...errors import ConfigError

        raise ConfigError(
            f"TensorRT {trt.__version__}'s calibrated INT8 engines pick per-layer precision themselves; "
            "ignored_scope needs a Q/DQ bundle: quantise with quantizer='onnxruntime' and run it with TensorRT."
        )
    artifact = write_source_onnx(source, directory / MODEL_FILE)
    scope = write_float_layers(source, directory, request)
    if scope is not None:
        artifact = replace(artifact, model_files=(*artifact.model_files, FLOAT_LAYERS_FILE))
    options = TensorRTOptions(precision=Precision.INT8)
    status = build_calibrated_engine(trt, source, directory, artifact, request=request, options=options)
    if not (directory / CALIBRATION_CACHE).is_file():
        from ...errors import RuntimeEngineError

        raise RuntimeEngineError(f"TensorRT {trt.__version__} built the INT8 engine but wrote no {CALIBRATION_CACHE}.")
    summary = (
        f"TensorRT {trt.__version__} INT8 engine, entropy calibration on {request.calibration.describe()} "
        f"({status}); fp32 ONNX file + {CALIBRATION_CACHE} (the int8 scales TensorRT builds the engine from)"
        f"{head_note(request, scope)}" + (f", pinned to FP32 by {FLOAT_LAYERS_FILE}" if scope is not None else "")
    )
    return QuantizeResult(
        artifact=replace(artifact, model_files=(*artifact.model_files, CALIBRATION_CACHE)), summary=summary,
        file_precision=Precision.INT8, engine_precision=Precision.INT8, runtime="tensorrt", runtime_options=options,
    )


def write_float_layers(source: Any, directory: Path, request: QuantizeRequest) -> Any:
    """The head scope of the bundle's fp32 ONNX file, listed in FLOAT_LAYERS_FILE for every engine build; None if plain."""
    if not request.keep_head_float:
        return None
    import onnx

    from .head_scope import onnx_head_scope

    graph = onnx.load(str(directory / MODEL_FILE), load_external_data=False).graph
    scope = onnx_head_scope(graph, detection_output(source))
    (directory / FLOAT_LAYERS_FILE).write_text(json.dumps(list(scope.nodes), indent=0))
    return scope


def build_calibrated_engine(
    trt: Any, source: Any, directory: Path, artifact: Any, *, request: QuantizeRequest, options: Any
) -> str:
    """Build (and cache in `directory`) the INT8 engine for the fp32 ONNX file there; returns the status line."""
    from ...export import write_bundle
    from ...runtimes.tensorrt import CudaRuntime, load_or_build_engine

    bundle = write_bundle(directory, source, artifact, Format.ONNX, Precision.FP32)  # rewritten by the caller
    from ...runtimes.tensorrt_calibration import CALIBRATION_CACHE

    calibrator = tensorrt_calibrator(
        request.calibration, input_spec=bundle.manifest.input, batch_size=CALIBRATION_BATCH,
        cache_file=directory / CALIBRATION_CACHE,
    )
    cuda = CudaRuntime(device=options.device)
    logger = trt.Logger(trt.Logger.WARNING)
    _, _, status = load_or_build_engine(trt, cuda, bundle, options, logger=logger, calibrator=calibrator)
    return status
