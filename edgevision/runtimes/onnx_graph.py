"""Read the compute precision out of an ONNX graph as ONNX Runtime optimised it (needs the `onnx` package)."""

from __future__ import annotations

import contextlib
from typing import Any

from .precision import EnginePrecision, count, normalise

#: Operators that compute in integers (ONNX standard and ONNX Runtime's com.microsoft contrib ops).
INTEGER_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul", "QAttention", "DynamicQuantizeLSTM", "QLinearConvTranspose",
})
#: Operators that compute in the type of their inputs.
FLOAT_OPS = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul", "FusedConv", "FusedGemm", "FusedMatMul", "NhwcConv", "NhwcFusedConv",
})


def optimised_graph_precision(path: str) -> EnginePrecision:
    """Compute layers per precision in the ONNX file at `path` (an optimised graph ORT wrote)."""
    try:
        import onnx
    except ImportError:
        return EnginePrecision.unknown("reading ONNX Runtime's optimised graph needs the onnx package")
    model = onnx.load(path)
    with contextlib.suppress(Exception):  # contrib ops can stop inference; Cast/initializer types still work
        model = onnx.shape_inference.infer_shapes(model)
    return graph_precision(model.graph)


def graph_precision(graph: Any) -> EnginePrecision:
    """Count integer ops as int8 and float compute ops by the element type of their first typed input."""
    types = tensor_types(graph)
    precisions: list[str | None] = []
    casts_from_fp16 = 0
    for node in graph.node:
        if node.op_type == "Cast" and types.get(node.input[0]) == "fp16":
            casts_from_fp16 += 1
        if node.op_type in INTEGER_OPS:
            precisions.append("int8")
        elif node.op_type in FLOAT_OPS:
            known = [types[name] for name in node.input[:2] if name in types]
            precisions.append(known[0] if known else None)
    layers = count(precisions)
    if not layers:
        return EnginePrecision.unknown("ONNX Runtime's optimised graph has no convolution or matrix product with a known type")
    note = ""
    if casts_from_fp16 and "fp16" not in layers:
        note = f"fp16 tensors cast to fp32 by ONNX Runtime ({casts_from_fp16} Cast nodes): no fp16 kernels here"
    return EnginePrecision(layers, source="ONNX Runtime optimised graph", note=note)


def tensor_types(graph: Any) -> dict[str, str]:
    """Tensor name → edgevision precision name, from inputs, initializers, inferred value_info and Cast targets."""
    from onnx import TensorProto

    def name_of(elem_type: int) -> str | None:
        return normalise(TensorProto.DataType.Name(elem_type)) if elem_type else None

    types: dict[str, str] = {}
    for value in (*graph.input, *graph.value_info, *graph.output):
        found = name_of(value.type.tensor_type.elem_type)
        if found:
            types[value.name] = found
    for initializer in graph.initializer:
        found = name_of(initializer.data_type)
        if found:
            types[initializer.name] = found
    for node in graph.node:
        if node.op_type == "Cast":
            target = next((a.i for a in node.attribute if a.name == "to"), 0)
            found = name_of(target)
            if found:
                types.setdefault(node.output[0], found)
    return types
