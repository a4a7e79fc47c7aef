"""Is this model a transformer? One answer for every quantiser, from the ONNX graph or the torch modules.

Transformers quantise differently from CNNs: LayerNorm, Softmax and GELU see activations with a few
large outliers, so per-tensor int8 ranges set by MinMax crush the many small values. NNCF has a
transformer model type for this (symmetric activations into MatMuls, SmoothQuant, no quantisers on
LayerNorm/Softmax inputs), and ONNX Runtime must be told which ops to leave alone.

The sign used is *attention*: a Softmax over the product of two activations (Q·Kᵀ), or a torch
attention module. LayerNorm and GELU alone do not make a transformer (ConvNeXt has both and
quantises well as a CNN); they are counted for the manifest's note.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: ONNX Runtime quantises only these op types in a transformer: the matrix products, which hold the FLOPs
#: (MatMul also covers Q·Kᵀ and attention·V). Everything else runs in float.
TRANSFORMER_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
#: The ops a transformer must keep in float, named in the manifest (ONNX op types; GELU exports as Erf before opset 20).
TRANSFORMER_FLOAT_OPS = ("LayerNormalization", "Softmax", "Erf", "Gelu")
#: The manifest's compression key listing those nodes by name.
FLOAT_NODES_NOTE = "quantize_float_nodes"
#: Elementwise ops that may sit between the Q·Kᵀ MatMul and its Softmax (scale, bias, mask, casts).
_SCORE_OPS = frozenset({"Add", "Mul", "Div", "Sub", "Where", "Cast", "Reshape", "Transpose", "Softmax"})
#: How many such ops the walk from a Softmax back to its MatMul crosses at most.
_MAX_SCORE_DEPTH = 6


@dataclass(frozen=True, kw_only=True)
class TransformerPattern:
    """What made a model a transformer: attention blocks found, plus its LayerNorms and GELUs."""

    attention: int
    layer_norms: int
    gelus: int

    def describe(self) -> str:
        return f"transformer: {self.attention} attention block(s), {self.layer_norms} LayerNorm(s), {self.gelus} GELU(s)"


def find_transformer(model: Any) -> TransformerPattern | None:
    """The transformer pattern of an ONNX ModelProto/GraphProto or a torch module; None for a CNN."""
    if hasattr(model, "named_modules"):
        return _from_torch(model)
    graph = model.graph if hasattr(model, "graph") else model
    if not hasattr(graph, "node"):
        raise TypeError(f"find_transformer takes an ONNX model or graph or a torch module, not {type(model).__name__}")
    return _from_onnx(graph)


def _from_torch(module: Any) -> TransformerPattern | None:
    names = [type(layer).__name__ for layer in module.modules()]
    attention = sum(name.endswith(("Attention", "AttentionV2")) for name in names)  # MultiheadAttention, Swin's
    if not attention:
        return None
    return TransformerPattern(
        attention=attention, layer_norms=sum("LayerNorm" in name for name in names),
        gelus=sum(name == "GELU" for name in names),
    )


def _from_onnx(graph: Any) -> TransformerPattern | None:
    constant = _constant_tensors(graph)
    producer = {output: node for node in graph.node for output in node.output}
    attention = sum(_scores_from_two_activations(node, producer, constant) for node in graph.node if node.op_type == "Softmax")
    if not attention:
        return None
    ops = [node.op_type for node in graph.node]
    return TransformerPattern(
        attention=attention, layer_norms=ops.count("LayerNormalization"), gelus=ops.count("Erf") + ops.count("Gelu")
    )


def _scores_from_two_activations(softmax: Any, producer: dict[str, Any], constant: set[str]) -> bool:
    """Does `softmax` normalise MatMul(activation, activation) scores, through a few elementwise ops?"""
    frontier, seen = [softmax.input[0]], set()
    for _ in range(_MAX_SCORE_DEPTH):
        following = []
        for tensor in frontier:
            node = producer.get(tensor)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "MatMul":
                if not any(name in constant for name in node.input):
                    return True
            elif node.op_type in _SCORE_OPS:
                following.extend(name for name in node.input if name and name not in constant)
        frontier = following
    return False


def _constant_tensors(graph: Any) -> set[str]:
    """Initializers, Constant outputs, and outputs of nodes computed only from those (e.g. a transposed weight)."""
    constant = {tensor.name for tensor in graph.initializer}
    for node in graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type == "Constant" or (inputs and all(name in constant for name in inputs)):
            constant.update(node.output)
    return constant


@dataclass(frozen=True, kw_only=True)
class TransformerFloat:
    """A transformer's ops left in float by a quantiser: (op type, node name) pairs, in graph order."""

    pattern: TransformerPattern
    nodes: tuple[tuple[str, str], ...]
    engine_note: str = ""  # what else the engine did for the transformer (NNCF model type, SmoothQuant)

    def note(self) -> str:
        """The compression summary's words: the pattern, and how many nodes of each type stayed float."""
        counts: dict[str, int] = {}
        for op_type, _ in self.nodes:
            counts[op_type] = counts.get(op_type, 0) + 1
        kept = ", ".join(f"{count} {op_type}" for op_type, count in counts.items()) or "none of LayerNorm/Softmax/GELU"
        how = f"; {self.engine_note}" if self.engine_note else ""
        return f"; {self.pattern.describe()}{how}; kept in float: {kept} (named in {FLOAT_NODES_NOTE})"

    def node_list(self) -> str:
        return ", ".join(name for _, name in self.nodes)


def transformer_float_nodes(graph: Any, op_types: Iterable[str] = TRANSFORMER_FLOAT_OPS) -> tuple[tuple[str, str], ...]:
    """(op type, name) of the ONNX graph's nodes of `op_types`: those ONNX Runtime leaves in float in a transformer."""
    wanted = set(op_types)
    return tuple((node.op_type, node.name) for node in graph.node if node.op_type in wanted)


#: OpenVINO op types a transformer keeps in float: LayerNorm (MVN), Softmax, GELU, and fused attention.
OPENVINO_FLOAT_OPS = ("MVN", "Softmax", "Gelu", "ScaledDotProductAttention")


def openvino_float_ops(model: Any, op_types: Iterable[str] = OPENVINO_FLOAT_OPS) -> tuple[tuple[str, str], ...]:
    """(op type, name) of the ov.Model's ops of `op_types` that no FakeQuantize feeds: those left in float."""
    wanted = set(op_types)
    kept = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in wanted:
            continue
        inputs = [op.input_value(i).get_node().get_type_name() for i in range(op.get_input_size())]
        if "FakeQuantize" not in inputs:
            kept.append((op.get_type_name(), op.get_friendly_name()))
    return tuple(kept)


def verify_onnx_transformer_float(graph: Any, kept: TransformerFloat) -> None:
    """Raise CompressionError if a node the manifest names as float reads a dequantised (int8) activation.

    Only the data input counts: the exporter may share an initializer between a LayerNorm's bias and a
    quantised Gemm's (identical zeros at random init), and then the bias arrives through DequantizeLinear
    unchanged while the LayerNorm still computes in float.
    """
    from ...errors import CompressionError

    producer = {output: node.op_type for node in graph.node for output in node.output}
    names = {name for _, name in kept.nodes}
    quantised = [node.name for node in graph.node
                 if node.name in names and node.input and producer.get(node.input[0]) == "DequantizeLinear"]
    if quantised:
        raise CompressionError(
            f"ONNX Runtime put Q/DQ in front of {len(quantised)} transformer node(s) meant to stay float "
            f"(e.g. {quantised[0]}). Report this with your onnxruntime version."
        )


__all__ = [
    "FLOAT_NODES_NOTE", "OPENVINO_FLOAT_OPS", "TRANSFORMER_FLOAT_OPS", "TRANSFORMER_QUANTIZED_OPS", "TransformerFloat", "TransformerPattern",
    "find_transformer", "openvino_float_ops", "transformer_float_nodes", "verify_onnx_transformer_float",
]
