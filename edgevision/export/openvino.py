"""Export to OpenVINO IR (model.xml + model.bin), FP32, FP16 or BF16, dynamic batch.

The torch module is converted directly (``ov.convert_model`` traces it), which matches the
torch model to ~1e-6 and needs no ONNX package. Where tracing fails (torchvision's ViT: the
TorchScript tracer's sanity check sees its graph differ between two runs), the model goes through
the ONNX exporter instead (`write_fp32_onnx`, the ONNX bundle's own route) and OpenVINO reads
that; the manifest's ``conversion`` says which route made the IR, and parity checks it alike. FP16 stores the weights as float16 (half the
.bin) while inputs and outputs stay float32, so device code feeds the same arrays for every
precision. BF16 stores the weights as float16 too and notes bf16 in the IR's ``rt_info``
(runtime_options/INFERENCE_PRECISION_HINT) for readers of the file; OpenVINO 2026.4 does not
apply that note by itself (checked), so the edgevision runtime sets the bf16 hint from the
manifest. It is refused on a CPU without bf16 (AVX512-BF16 or AMX), where OpenVINO would
quietly run f32 and the parity check would not be of bf16. `convert_onnx_to_openvino` and `save_ir` are the entry points for models
that arrive as ONNX or as an ``ov.Model`` (e.g. one quantised by NNCF).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import ExportError, ModelFileError
from ..model import TrainedModel
from ..types import Precision
from .base import ExportArtifact, output_name_for, package_version

PRECISIONS = frozenset({Precision.FP32, Precision.FP16, Precision.BF16})
XML_FILE = "model.xml"
BIN_FILE = "model.bin"
MODEL_FILES = (XML_FILE, BIN_FILE)
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: Manifest `conversion` values: the torch module traced by OpenVINO, or its ONNX export read by OpenVINO.
TRACE_ROUTE = "torch trace"
ONNX_ROUTE = "onnx"


def export_openvino(model: TrainedModel, directory: Path, *, precision: Precision) -> ExportArtifact:
    """Convert the torch module to IR in `directory`, input "input" (N×3×H×W), output named by task (`output_name_for`)."""
    ov = require("openvino", extra="openvino", what="OpenVINO")
    torch = require("torch", extra="compress", what="PyTorch")
    if precision is Precision.BF16:
        check_bf16_cpu()
    height, width = model.input_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ov_model = ov.convert_model(
                model.module.eval(),
                example_input=torch.zeros(1, 3, height, width),
                input=[ov.PartialShape([-1, 3, height, width])],
            )
        conversion = TRACE_ROUTE
    except Exception as exc:  # noqa: BLE001 - the converter raises many types
        ov_model = _convert_through_onnx(model, traced_error=_first_line(exc))
        conversion = f"{ONNX_ROUTE} (tracing the torch module failed: {_first_line(exc)})"
    for ports, name in ((ov_model.inputs, INPUT_NAME), (ov_model.outputs, output_name_for(model))):
        if len(ports) == 1:  # save_ir rejects any other count with a clear message
            ports[0].get_tensor().set_names({name})
    artifact = save_ir(ov_model, directory, precision=precision)
    return replace(artifact, versions={**artifact.versions, "torch": torch.__version__}, conversion=conversion)


def _convert_through_onnx(model: TrainedModel, *, traced_error: str) -> Any:
    """The model as an ``ov.Model`` read from its FP32 ONNX export (a temporary file), for graphs tracing refuses."""
    import tempfile

    ov = require("openvino", extra="openvino", what="OpenVINO")
    from .onnx import MODEL_FILE, write_fp32_onnx

    with tempfile.TemporaryDirectory(prefix="edgevision-ov-") as scratch:
        path = Path(scratch) / MODEL_FILE
        try:
            write_fp32_onnx(model, path)
            ov_model = ov.convert_model(str(path))
        except Exception as exc:  # noqa: BLE001 - both converters raise many types
            raise ExportError(
                f"OpenVINO could not convert the model: tracing the torch module failed ({traced_error}) and so did "
                f"the ONNX route ({_first_line(exc)}). Export to ONNX to see the exporter's complaint."
            ) from exc
    return ov_model


def convert_onnx_to_openvino(
    onnx_path: str | os.PathLike[str], directory: str | os.PathLike[str], *, precision: Precision
) -> ExportArtifact:
    """Convert an ONNX file (FP32, or QDQ-quantised for INT8) to IR in `directory`.

    Tensor names and the batch dimension come from the ONNX graph. FP16 compresses the
    weights to float16; FP32 and INT8 keep the graph's weights as they are.
    """
    ov = require("openvino", extra="openvino", what="OpenVINO")
    if precision is Precision.BF16:
        check_bf16_cpu()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise ModelFileError(f"ONNX file {onnx_path} does not exist; export the model to ONNX first.")
    try:
        ov_model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(
            f"OpenVINO cannot read {onnx_path}: {_first_line(exc)}. Check that the file is a complete ONNX model."
        ) from exc
    return save_ir(ov_model, directory, precision=precision)


def save_ir(ov_model: Any, directory: str | os.PathLike[str], *, precision: Precision) -> ExportArtifact:
    """Write an ``ov.Model`` (one N×3×H×W float input, one output) as model.xml + model.bin.

    FP16 and BF16 compress weights to float16 (BF16 also records its runtime precision hint); an INT8
    model (already quantised) is saved as it is.
    """
    ov = require("openvino", extra="openvino", what="OpenVINO")
    directory = Path(directory)
    if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
        raise ExportError(
            f"edgevision bundles hold image models with one input and one output; this model has "
            f"{len(ov_model.inputs)} inputs and {len(ov_model.outputs)} outputs."
        )
    shape = ov_model.inputs[0].get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or shape[1].is_dynamic or shape[1].get_length() != 3:
        raise ExportError(f"The model input must be N×3×H×W (NCHW), got {shape}; export it channels-first.")
    ov_model.inputs[0].get_node().set_layout(ov.Layout("NCHW"))
    input_name = _tensor_name(ov_model.inputs[0], fallback=INPUT_NAME)
    output_name = _tensor_name(ov_model.outputs[0], fallback=OUTPUT_NAME)
    if precision is Precision.BF16:
        ov_model.set_rt_info("bf16", ["runtime_options", "INFERENCE_PRECISION_HINT"])
    try:
        compress = precision in (Precision.FP16, Precision.BF16)
        ov.save_model(ov_model, str(directory / XML_FILE), compress_to_fp16=compress)
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"OpenVINO could not write the IR files: {_first_line(exc)}") from exc
    return ExportArtifact(
        MODEL_FILES, input_name, output_name, dynamic_batch=shape[0].is_dynamic,
        versions={"openvino": package_version("openvino")},
    )


def check_bf16_cpu() -> None:
    """Refuse a bf16 export before any work where this CPU cannot compute bf16 (parity could not be checked)."""
    ov = require("openvino", extra="openvino", what="OpenVINO")
    from ..runtimes.openvino import check_bf16, cpu_capabilities

    check_bf16(cpu_capabilities(ov.Core()), "CPU")


def _tensor_name(port: Any, *, fallback: str) -> str:
    """The port's tensor name, giving it `fallback` when the graph left it unnamed."""
    names = port.get_names()
    if not names:
        port.get_tensor().set_names({fallback})
        return fallback
    return port.get_any_name()


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip() and not line.startswith("Exception from")]
    return (lines[0] if lines else type(exc).__name__)[:300]
