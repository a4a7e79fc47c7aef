"""The detection head's float scope, walked back from the output of the converted graph, and its verifiers.

The scope must hold the prediction layers and all decoding, and nothing of the trunk; the verifiers
must pass a head-float file and fail a plainly quantised one (so the check can fail).
"""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgevision.compress.quantize.head_scope import (
    HeadScope,
    onnx_head_scope,
    openvino_head_scope,
    verify_onnx_head_float,
)
from edgevision.errors import CompressionError
from tests.yolo_like import make_yolo_onnx

SIZE = (64, 96)
FCOS_PREDICTION_LAYERS = 9  # cls_logits, bbox_reg, bbox_ctrness on each of 3 levels (shared weights, one conv each)


@pytest.fixture(scope="module")
def fcos_onnx(tmp_path_factory):
    """An untrained fcos_digits graph (the scope depends on the graph, not on the weights)."""
    from edgevision.compress.quantize.base import write_source_onnx
    from edgevision.detectors import build_fcos_detector, detection_spec
    from edgevision.model import TrainedModel
    from edgevision.train_detect import letterbox_spec
    from edgevision.types import Task

    module = build_fcos_detector(num_classes=3, input_size=SIZE).eval()
    model = TrainedModel(module=module, labels=["a", "b", "c"], preprocess=letterbox_spec(SIZE),
                         architecture="fcos_digits", name="fcos", task=Task.DETECT, detection=detection_spec())
    path = tmp_path_factory.mktemp("fcos") / "model.onnx"
    write_source_onnx(model, path)
    return path


def _ops(graph, names):
    by_name = {n.name: n for n in graph.node}
    return [by_name[name].op_type for name in names]


def test_fcos_scope_is_the_prediction_convs_and_all_decoding(fcos_onnx):
    graph = onnx.load(str(fcos_onnx)).graph
    scope = onnx_head_scope(graph, "boxes_scores")
    assert len(scope.learned) == FCOS_PREDICTION_LAYERS
    assert all(("cls_logits" in n or "bbox_reg" in n or "bbox_ctrness" in n) for n in scope.learned)
    ops = set(_ops(graph, scope.nodes))
    assert {"Sigmoid", "Sqrt", "Clip", "Concat", "Transpose"} <= ops
    assert _ops(graph, [graph.node[-1].name]) == ["Transpose"] and graph.node[-1].name in scope.nodes
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    assert {c for c in convs if c in scope.nodes} == set(scope.learned)  # no trunk/tower conv
    assert not any(n.startswith("/backbone") for n in scope.nodes if _ops(graph, [n])[0] != "Shape")


def test_yolo_layout_scope_is_the_two_head_convs_and_the_pixel_decode(tmp_path):
    path = make_yolo_onnx(tmp_path / "yolo.onnx", imgsz=SIZE)
    graph = onnx.load(str(path)).graph
    scope = onnx_head_scope(graph, "output0")
    assert sorted(scope.learned) == ["/heads.0/Conv", "/heads.1/Conv"]
    assert {"Tanh", "Exp", "Sigmoid", "Concat"} <= set(_ops(graph, scope.nodes))
    assert not any(n.startswith(("/stem", "/down")) for n in scope.nodes)


def test_a_graph_without_learned_layers_before_its_output_has_no_head_to_keep():
    with pytest.raises(CompressionError, match="head='plain'"):
        HeadScope("ONNX", ("Sigmoid_0",), ())


def test_onnx_verifier_passes_head_float_and_fails_plain_quantisation(fcos_onnx, tmp_path):
    import numpy as np
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((1, 3, *SIZE), dtype=np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    prepared = tmp_path / "prepared.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_pre_process(str(fcos_onnx), str(prepared))
    scope = onnx_head_scope(onnx.load(str(prepared)).graph, "boxes_scores")
    for policy, excluded in (("float", list(scope.nodes)), ("plain", [])):
        out = tmp_path / f"{policy}.onnx"
        quantize_static(str(prepared), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        nodes_to_exclude=excluded)
        graph = onnx.load(str(out)).graph
        if policy == "float":
            verify_onnx_head_float(graph, scope)
        else:
            with pytest.raises(CompressionError, match="must stay in float"):
                verify_onnx_head_float(graph, scope)


def test_openvino_walk_finds_the_same_prediction_layers(fcos_onnx):
    ov = pytest.importorskip("openvino")
    scope = openvino_head_scope(ov.convert_model(str(fcos_onnx)), "boxes_scores")
    assert len(scope.learned) == FCOS_PREDICTION_LAYERS
    assert all(("cls_logits" in n or "bbox_reg" in n or "bbox_ctrness" in n) for n in scope.learned)
    assert not any(n.startswith("/backbone") and "Conv" in n for n in scope.nodes)


def test_tensorrt_pins_the_layers_made_from_the_listed_nodes(tmp_path):
    from edgevision.runtimes.tensorrt_precision import FLOAT_LAYERS_FILE, layer_matches, read_float_layers

    wanted = {"/head/cls_logits/Conv", "/Sigmoid"}
    assert layer_matches("/Sigmoid", wanted) and layer_matches("/head/cls_logits/Conv_3", wanted)
    assert not layer_matches("/Sigmoid_1x", wanted) and not layer_matches("/backbone/Conv", wanted)
    assert read_float_layers(tmp_path) == []
    (tmp_path / FLOAT_LAYERS_FILE).write_text('["/Sigmoid"]')
    assert read_float_layers(tmp_path) == ["/Sigmoid"]


def test_tensorrt_head_float_engine_builds_where_tensorrt_is_present(fcos_onnx):
    trt = pytest.importorskip("tensorrt")  # skips here: TensorRT cannot be installed on this machine
    from edgevision.runtimes.tensorrt_precision import pin_float_layers

    scope = onnx_head_scope(onnx.load(str(fcos_onnx)).graph, "boxes_scores")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(fcos_onnx))
    config = builder.create_builder_config()
    assert pin_float_layers(trt, network, config, list(scope.nodes)) >= len(scope.learned)
    assert config.get_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def test_a_head_node_the_quantiser_removed_is_named(fcos_onnx):
    """A scope node missing from the quantised graph cannot be checked: the verifier says which, not 'passed'."""
    graph = onnx.load(str(fcos_onnx)).graph
    scope = onnx_head_scope(graph, "boxes_scores")
    gone = scope.learned[0]
    kept = [node for node in graph.node if node.name != gone]
    del graph.node[:]
    graph.node.extend(kept)
    with pytest.raises(CompressionError, match=f"lost head node.*{gone}.*fused or removed"):
        verify_onnx_head_float(graph, scope)
