"""The detection head's float scope, computed from the converted graph, and the check that it stayed float.

Why from the graph: one per-tensor int8 scale cannot hold box coordinates (fractions or hundreds of
pixels) and class scores (0..1) at once, and decoding (sigmoid, sqrt, exp, grid offsets, DFL) does
not survive quantisation. Which nodes that is depends on the converter's version, so no name
patterns: walk backwards from the detection output through every producer, keeping each node,
and stop on each path at (and including) the first learned layer — a Conv/ConvTranspose/Gemm/
MatMul (TFLite: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ...) whose weights are constants.
So the scope is the final prediction layers plus all decoding after them. A shape read (Shape/ShapeOf)
is kept but not walked through: it reads a tensor's size, not its values.

One walker and one verifier per graph kind: ONNX (node names, for ONNX Runtime's `nodes_to_exclude`),
OpenVINO (op friendly names, for NNCF's `IgnoredScope`), TFLite (op indices and their output tensor
names, for ai-edge-quantizer's recipe). The verifiers read the *quantised* graph: the scope's learned
layers (and shape reads) may take a dequantised activation from the int8 trunk (the boundary), but no other input of a
scope node may come from a quantise/dequantise or fake-quantise node, and no scope weight may be integer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import CompressionError

ONNX_LEARNED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
ONNX_SHAPE_READS = frozenset({"Shape", "Size"})
ONNX_QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
OPENVINO_LEARNED = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData",
                              "GroupConvolutionBackpropData", "MatMul"})
OPENVINO_SKIPPED = frozenset({"Constant", "Parameter", "Result"})
OPENVINO_SHAPE_READS = frozenset({"ShapeOf"})
TFLITE_LEARNED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL",
                            "CONV_3D"})
TFLITE_QUANT_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True)
class HeadScope:
    """Nodes kept in float: `nodes` in graph order (names, or TFLite op indices), `learned` the prediction layers.

    `tensors` (TFLite only) are the output tensor names of the scope's ops, which is how
    ai-edge-quantizer selects ops and how the quantised file's ops are found again.
    """

    graph: str
    nodes: tuple[Hashable, ...]
    learned: tuple[Hashable, ...]
    tensors: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.learned:
            raise CompressionError(
                f"No learned layer (convolution or matmul with constant weights) feeds the detection output of this "
                f"{self.graph} graph, so there is no head to keep in float. Quantise with head='plain'."
            )

    def __len__(self) -> int:
        return len(self.nodes)

    def describe(self) -> str:
        return f"{len(self.nodes)} head node(s) kept in float ({len(self.learned)} prediction layer(s) + decoding)"


def _walk(start: Iterable[Any], producers: Callable[[Any], list[Any]], *, is_learned: Callable[[Any], bool],
          is_shape_read: Callable[[Any], bool]) -> tuple[set[int], list[Any], list[Any]]:
    """Backward search from `start` nodes; returns (visited ids, scope nodes, learned layers)."""
    seen: set[int] = set()
    scope: list[Any] = []
    learned: list[Any] = []
    stack = list(start)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        scope.append(node)
        if is_learned(node):
            learned.append(node)
            continue
        if is_shape_read(node):
            continue
        stack.extend(producers(node))
    return seen, scope, learned


# -- ONNX ------------------------------------------------------------------------------------------


def onnx_head_scope(graph: Any, output: str) -> HeadScope:
    """The head scope of an ONNX `GraphProto` whose detection tensor is `output` (node names, graph order)."""
    producer = {name: node for node in graph.node for name in node.output}
    constants = _onnx_constants(graph)
    if output not in producer:
        raise CompressionError(f"The ONNX graph has no node producing {output!r}; outputs: "
                               f"{[o.name for o in graph.output]}.")

    def producers(node: Any) -> list[Any]:
        return [producer[name] for name in node.input if name in producer and name not in constants]

    def is_learned(node: Any) -> bool:
        return node.op_type in ONNX_LEARNED and len(node.input) > 1 and node.input[1] in constants

    _, scope, learned = _walk([producer[output]], producers, is_learned=is_learned,
                              is_shape_read=lambda node: node.op_type in ONNX_SHAPE_READS)
    chosen = {id(n) for n in scope}
    unnamed = [n.op_type for n in scope if not n.name]
    if unnamed:
        raise CompressionError(f"The ONNX graph has unnamed {', '.join(sorted(set(unnamed)))} node(s) in the detection "
                               "head; name every node (onnx.utils or quant_pre_process do) before quantising.")
    in_order = [n.name for n in graph.node if id(n) in chosen]
    return HeadScope("ONNX", tuple(in_order), tuple(n.name for n in graph.node if n.name in {m.name for m in learned}))


def _onnx_constants(graph: Any) -> set[str]:
    """Tensors whose values are fixed: initializers and Constant outputs (what a learned layer's weights are)."""
    names = {init.name for init in graph.initializer}
    names |= {name for node in graph.node if node.op_type == "Constant" for name in node.output}
    return names


def verify_onnx_head_float(graph: Any, scope: HeadScope) -> None:
    """Raise CompressionError if a Q/DQ node sits inside `scope` of the quantised ONNX `graph`."""
    producer = {name: node for node in graph.node for name in node.output}
    by_name = {node.name: node for node in graph.node}
    _require_all(scope.nodes, by_name, "ONNX graph", "node")
    learned = set(scope.learned)
    problems = []
    for name in scope.nodes:
        node = by_name[name]
        if node.op_type in ONNX_QUANT_OPS:
            problems.append(f"{name} is itself a {node.op_type}")
        for index, tensor in enumerate(node.input):
            source = producer.get(tensor)
            if source is None or source.op_type not in ONNX_QUANT_OPS:
                continue
            if (name in learned and index == 0) or node.op_type in ONNX_SHAPE_READS:
                continue  # the int8 trunk's activation entering the float prediction layer, or a size read
            problems.append(f"input {index} of {node.op_type} {name} comes from {source.op_type} {source.name}")
    _raise_if(problems, "ONNX")


# -- OpenVINO --------------------------------------------------------------------------------------


def openvino_head_scope(model: Any, output: str) -> HeadScope:
    """The head scope of an `ov.Model` whose detection output tensor is named `output` (op friendly names)."""
    results = [r for r in model.get_results() if output in r.input_value(0).get_names()]
    if not results and len(model.get_results()) == 1:
        results = list(model.get_results())
    if not results:
        raise CompressionError(f"The OpenVINO model has no output named {output!r}.")

    def producers(node: Any) -> list[Any]:
        return [value.get_node() for value in node.input_values()
                if value.get_node().get_type_name() not in OPENVINO_SKIPPED]

    def is_learned(node: Any) -> bool:
        return node.get_type_name() in OPENVINO_LEARNED and _openvino_constant_weights(node)

    start = [results[0].input_value(0).get_node()]
    _, scope, learned = _walk(start, producers, is_learned=is_learned,
                              is_shape_read=lambda node: node.get_type_name() in OPENVINO_SHAPE_READS)
    chosen = {n.get_friendly_name() for n in scope}
    learned_names = {n.get_friendly_name() for n in learned}
    ordered = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_friendly_name() in chosen]
    return HeadScope("OpenVINO", tuple(ordered), tuple(n for n in ordered if n in learned_names))


def _openvino_constant_weights(node: Any) -> bool:
    """Weights are a Constant, possibly behind Convert/decompression (f16 or int8 weights)."""
    source = node.input_value(1).get_node()
    for _ in range(4):
        if source.get_type_name() == "Constant":
            return True
        if source.get_type_name() not in {"Convert", "Multiply", "Subtract", "Reshape", "FakeQuantize"}:
            return False
        source = source.input_value(0).get_node()
    return False


def _integer_weight(node: Any, depth: int = 4) -> bool:
    """A Constant of 8 bits or fewer behind a decompression chain (Convert → Subtract → Multiply)."""
    kind = node.get_type_name()
    if kind == "Constant":
        element = node.get_output_element_type(0)
        return not element.is_real() and element.bitwidth <= 8 and element.get_type_name() != "boolean"
    if depth == 0 or kind not in {"Convert", "Multiply", "Subtract", "Reshape"}:
        return False
    return any(_integer_weight(v.get_node(), depth - 1) for v in node.input_values())


def verify_openvino_head_float(model: Any, scope: HeadScope) -> None:
    """Raise CompressionError if a FakeQuantize or an int8 weight sits inside `scope` of the quantised `ov.Model`."""
    by_name = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    _require_all(scope.nodes, by_name, "OpenVINO model", "op")
    learned = set(scope.learned)
    problems = []
    for name in scope.nodes:
        node = by_name[name]
        if node.get_type_name() == "FakeQuantize":
            problems.append(f"{name} is a FakeQuantize")
        for index, value in enumerate(node.input_values()):
            source = value.get_node()
            boundary = (name in learned and index == 0) or node.get_type_name() in OPENVINO_SHAPE_READS
            if source.get_type_name() == "FakeQuantize" and not boundary:
                problems.append(f"input {index} of {node.get_type_name()} {name} is FakeQuantize {source.get_friendly_name()}")
            elif _integer_weight(source):
                problems.append(f"input {index} of {node.get_type_name()} {name} is an integer constant "
                                f"({source.get_friendly_name()})")
    _raise_if(problems, "OpenVINO")


# -- TFLite ----------------------------------------------------------------------------------------


def _tflite_model(path: Path) -> tuple[Any, Any, dict[int, str]]:
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as utils

    model = utils.read_model(Path(path))
    codes = {i: utils.TFL_OP_CODE_TO_NAME.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))
             for i, code in enumerate(model.operatorCodes)}
    return model, model.subgraphs[0], codes


def _tensor_name(subgraph: Any, index: int) -> str:
    name = subgraph.tensors[index].name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def tflite_head_scope(path: Path) -> HeadScope:
    """The head scope of the FP32 TFLite file at `path` (op indices of subgraph 0), walked back from its outputs."""
    model, subgraph, codes = _tflite_model(path)
    producer = {out: i for i, op in enumerate(subgraph.operators) for out in op.outputs}
    ops = subgraph.operators

    def constant(tensor: int) -> bool:
        buffer = model.buffers[subgraph.tensors[tensor].buffer]
        return tensor not in producer and buffer is not None and buffer.data is not None and len(buffer.data) > 0

    def producers(index: int) -> list[int]:
        return [producer[t] for t in ops[index].inputs if t >= 0 and t in producer]

    def is_learned(index: int) -> bool:
        op = ops[index]
        return codes[op.opcodeIndex] in TFLITE_LEARNED and len(op.inputs) > 1 and constant(op.inputs[1])

    start = [producer[t] for t in subgraph.outputs if t in producer]
    if not start:
        raise CompressionError(f"{path.name}: no op produces the model's output.")
    _, scope, learned = _walk(start, producers, is_learned=is_learned,
                              is_shape_read=lambda index: codes[ops[index].opcodeIndex] == "SHAPE")
    nodes = tuple(sorted(scope))
    tensors = tuple(_tensor_name(subgraph, t) for i in nodes for t in ops[i].outputs if t >= 0)
    return HeadScope("TFLite", nodes, tuple(sorted(learned)), tensors)


def verify_tflite_head_float(path: Path, scope: HeadScope) -> None:
    """Raise CompressionError unless `scope`'s ops in the quantised file at `path` compute in float32.

    The ops are found again by their output tensor names; their outputs, weights and every input but
    a prediction layer's activation (the dequantised trunk) must be float32 and not come from a
    QUANTIZE/DEQUANTIZE op.
    """
    _, subgraph, codes = _tflite_model(path)
    ops = subgraph.operators
    producer = {out: i for i, op in enumerate(ops) for out in op.outputs}
    by_output = {_tensor_name(subgraph, out): i for i, op in enumerate(ops) for out in op.outputs if out >= 0}
    float32 = 0  # schema TensorType.FLOAT32
    _require_all(scope.tensors, by_output, "TFLite file", "tensor")
    found = sorted({by_output[name] for name in scope.tensors})
    problems = []
    for index in found:
        op = ops[index]
        kind = codes[op.opcodeIndex]
        learned = kind in TFLITE_LEARNED
        if kind in TFLITE_QUANT_OPS:
            problems.append(f"op {index} is {kind}")
        for out in op.outputs:
            if out >= 0 and subgraph.tensors[out].type != float32 and kind != "SHAPE":
                problems.append(f"{kind} op {index} writes a non-float32 tensor {_tensor_name(subgraph, out)!r}")
        for position, tensor in enumerate(op.inputs):
            if tensor < 0:
                continue
            source = producer.get(tensor)
            boundary = (learned and position == 0) or kind == "SHAPE"
            if source is not None and codes[ops[source].opcodeIndex] in TFLITE_QUANT_OPS and not boundary:
                problems.append(f"input {position} of {kind} op {index} comes from {codes[ops[source].opcodeIndex]}")
            if learned and position > 0 and subgraph.tensors[tensor].type != float32:
                problems.append(f"{kind} op {index} has non-float32 weights {_tensor_name(subgraph, tensor)!r}")
    _raise_if(problems, "TFLite")


def _require_all(names: tuple[str, ...], present: dict[str, Any], graph: str, kind: str) -> None:
    """Every scope name must still be in the quantised graph: one the quantiser fused away cannot be checked."""
    missing = [name for name in names if name not in present]
    if missing:
        raise CompressionError(f"The quantised {graph} lost head {kind}(s) {missing[:5]} that must stay in float "
                               "(the quantiser fused or removed them).")


def _raise_if(problems: list[str], graph: str) -> None:
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise CompressionError(
            f"The {graph} quantiser quantised part of the detection head that must stay in float: {shown}. "
            "This is a quantiser bug or an unsupported graph; quantise with head='plain' to accept it knowingly."
        )


__all__ = [
    "HeadScope", "onnx_head_scope", "openvino_head_scope", "tflite_head_scope", "verify_onnx_head_float",
    "verify_openvino_head_float", "verify_tflite_head_float",
]
