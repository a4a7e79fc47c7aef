"""Export to ONNX (opset 17, one self-contained file, dynamic batch), FP32 or FP16.

The TorchScript-based exporter (``dynamo=False``) is used because it writes a single file the
engines (ONNX Runtime, OpenVINO, TensorRT's parser) all accept; FP16 keeps float32 inputs and
outputs so device code feeds the same arrays for every precision.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .._optional import require
from ..errors import ExportError
from ..model import TrainedModel
from ..types import Precision
from .base import ExportArtifact, output_name_for, package_version

PRECISIONS = frozenset({Precision.FP32, Precision.FP16})
OPSET = 17
MODEL_FILE = "model.onnx"


def export_onnx(model: TrainedModel, directory: Path, *, precision: Precision) -> ExportArtifact:
    torch = require("torch", extra="compress", what="PyTorch")
    onnx = require("onnx", extra="onnx", what="onnx")
    path = directory / MODEL_FILE
    write_fp32_onnx(model, path)
    if precision is Precision.FP16:
        convert_onnx_to_fp16(path)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"The exported ONNX graph is invalid: {str(exc).splitlines()[0]}") from exc
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "opset": str(OPSET)}
    if precision is Precision.FP16:
        versions["onnxruntime"] = package_version("onnxruntime")
    return ExportArtifact((MODEL_FILE,), "input", output_name_for(model), versions=versions)


def write_fp32_onnx(model: TrainedModel, path: Path) -> None:
    """The FP32 ONNX graph every other format can start from."""
    import torch

    height, width = model.input_size
    example = torch.zeros(1, 3, height, width)
    output = output_name_for(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model.module.eval(), (example,), str(path), dynamo=False, opset_version=OPSET,
                input_names=["input"], output_names=[output],
                dynamic_axes={"input": {0: "batch"}, output: {0: "batch"}},
            )
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        first = str(exc).splitlines()[0].split(" Please feel free")[0]
        hint = ""
        if "adaptive_" in first and "not factor of input size" in first:
            hint = (" Adaptive pooling (PSP/DeepLab-style heads) exports when its output size divides the feature map: "
                    "choose an input size that makes it so, or use a pooling layer with a fixed kernel.")
        raise ExportError(f"torch could not export the model to ONNX: {first}{hint}") from exc


def convert_onnx_to_fp16(path: Path) -> None:
    """Weights and compute to FP16 in place, keeping float32 graph inputs/outputs."""
    onnx = require("onnx", extra="onnx", what="onnx")
    require("onnxruntime", extra="onnx", what="ONNX Runtime")
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp16 = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    sort_nodes_topologically(fp16.graph)  # the converter appends its input casts at the end
    onnx.save(fp16, str(path))


def sort_nodes_topologically(graph) -> None:  # noqa: ANN001 - onnx.GraphProto
    """Reorder `graph.node` so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        ready = [n for n in pending if all(name in available for name in n.input)]
        if not ready:
            raise ExportError("The FP16 ONNX graph has a cycle or a dangling input; export FP32 instead.")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)
