"""INT8 for Vision Transformers: each engine gets its transformer settings, parity holds, the manifest says so."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from edgevision.bundle import Bundle
from edgevision.compress.quantize import INT8_MIN_TOP1_AGREEMENT, CalibrationConfig, quantize
from edgevision.compress.quantize.transformer import FLOAT_NODES_NOTE, find_transformer
from edgevision.types import Precision

torch = pytest.importorskip("torch")

#: A ViT small enough to train on the digits in ~20 s on 2 cores: 16 patches of 8×8, 2 blocks of 2 heads.
VIT = {"image_size": 32, "patch_size": 8, "num_layers": 2, "num_heads": 2, "hidden_dim": 32, "mlp_dim": 64}


def _vision_transformer():
    from edgevision._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models import VisionTransformer

    return VisionTransformer(num_classes=10, **VIT)


@pytest.fixture(scope="module")
def tiny_vit(digits):
    """The tiny ViT trained on the digits train split (no augmentation: it converges in 25 short epochs, ≈90 % val)."""
    from torch.utils.data import DataLoader

    from edgevision import PreprocessSpec
    from edgevision.data.folder import ImageFolder
    from edgevision.data.transforms import TorchImageFolder, eval_transform
    from edgevision.model import TrainedModel
    from edgevision.train import evaluate_torch

    torch.manual_seed(0)
    spec = PreprocessSpec(size=(32, 32))
    train = ImageFolder.open(digits.train)
    loader = DataLoader(TorchImageFolder(train, eval_transform(spec)), batch_size=64, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    module, epochs = _vision_transformer(), 25
    optimizer = torch.optim.AdamW(module.parameters(), lr=5e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=epochs * len(loader))
    for _ in range(epochs):
        module.train()
        for images, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(module(images), labels).backward()
            optimizer.step()
            schedule.step()
    val = DataLoader(TorchImageFolder(ImageFolder.open(digits.val, labels=train.labels), eval_transform(spec)), batch_size=256)
    assert evaluate_torch(module, val) > 0.8
    return TrainedModel(module=module, labels=list(train.labels), preprocess=spec, architecture="vit_tiny", name="vit_tiny")


def _quantize(model, fmt: str, calibration: Path, output: Path, **guard: object) -> Bundle:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NNCF/ORT chatter is not the point
        return quantize(model, output, format=fmt, calibration=CalibrationConfig(data=calibration), **guard)


def _assert_int8_with_parity(bundle: Bundle) -> None:
    manifest = bundle.manifest
    assert manifest.precision is Precision.INT8
    assert bundle.parity_passed
    assert manifest.parity.min_top1_agreement == INT8_MIN_TOP1_AGREEMENT
    assert manifest.parity.top1_agreement >= INT8_MIN_TOP1_AGREEMENT


@pytest.mark.slow
def test_vit_onnxruntime_int8_quantises_matrix_products_and_names_the_float_ops(tiny_vit, small_train, tmp_path) -> None:
    import onnx

    bundle = _quantize(tiny_vit, "onnx", small_train, tmp_path / "ort")
    _assert_int8_with_parity(bundle)
    note = bundle.manifest.compression["quantize"]
    assert "transformer: 2 attention block(s), 5 LayerNorm(s), 2 GELU(s)" in note
    assert "kept in float: 5 LayerNormalization, 2 Softmax, 2 Erf" in note
    graph = onnx.load(str(bundle.model_path)).graph
    by_name = {node.name: node for node in graph.node}
    producer = {out: node.op_type for node in graph.node for out in node.output}
    float_nodes = bundle.manifest.compression[FLOAT_NODES_NOTE].split(", ")
    assert len(float_nodes) == 9
    for name in float_nodes:  # named, present, and reading float tensors
        assert by_name[name].op_type in {"LayerNormalization", "Softmax", "Erf"}
        assert all(producer.get(tensor) != "DequantizeLinear" for tensor in by_name[name].input), name
    matmuls = [node for node in graph.node if node.op_type in {"MatMul", "Gemm"}]
    assert matmuls and all(producer.get(node.input[0]) == "DequantizeLinear" for node in matmuls)  # int8 inputs
    quantised_ops = {node.op_type for node in graph.node if any(producer.get(t) == "DequantizeLinear" for t in node.input)}
    assert quantised_ops - {"Shape"} <= {"Conv", "MatMul", "Gemm"}  # Shape reads a dequantised tensor's shape only


@pytest.mark.slow
def test_vit_openvino_int8_uses_nncf_transformer_type_under_accuracy_control(tiny_vit, small_train, digits, tmp_path) -> None:
    import openvino as ov

    bundle = _quantize(tiny_vit, "openvino", small_train, tmp_path / "ov", validation=digits.val, max_accuracy_drop=0.02)
    _assert_int8_with_parity(bundle)
    assert "drop" in bundle.manifest.compression["accuracy"]  # the guard measured it through OpenVINO
    note = bundle.manifest.compression["quantize"]
    assert "with accuracy control" in note and "transformer: 2 attention block(s)" in note
    assert "NNCF model_type=TRANSFORMER, SmoothQuant alpha 0.95 on MatMuls" in note
    model = ov.Core().read_model(str(bundle.model_path))
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    assert any(op.get_type_name() == "FakeQuantize" for op in ops.values())
    float_ops = bundle.manifest.compression[FLOAT_NODES_NOTE].split(", ")
    assert sum(ops[name].get_type_name() == "MVN" for name in float_ops) == 5  # every LayerNorm stays float
    for name in float_ops:
        inputs = {ops[name].input_value(i).get_node().get_type_name() for i in range(ops[name].get_input_size())}
        assert "FakeQuantize" not in inputs, name


@pytest.mark.slow
def test_vit_tflite_int8_runs_full_integer(tiny_vit, small_train, tmp_path) -> None:
    pytest.importorskip("ai_edge_quantizer")
    bundle = _quantize(tiny_vit, "tflite", small_train, tmp_path / "tflite")
    _assert_int8_with_parity(bundle)
    assert "full-integer INT8" in bundle.manifest.compression["quantize"]


def test_transformers_are_found_by_attention_not_by_layernorm(random_model, tmp_path) -> None:
    """ViT and Swin have attention; ConvNeXt has LayerNorm and GELU but is a CNN; so is a ResNet."""
    import onnx

    from edgevision import PreprocessSpec
    from edgevision.compress.quantize.base import write_source_onnx
    from edgevision.model import TrainedModel, build_architecture

    vit = _vision_transformer()
    assert (find_transformer(vit).attention, find_transformer(vit).layer_norms, find_transformer(vit).gelus) == (2, 5, 2)
    swin = find_transformer(build_architecture("swin_t", num_classes=10))
    assert swin is not None and swin.attention == 12
    assert find_transformer(build_architecture("convnext_tiny", num_classes=10)) is None
    sources = {
        "vit": TrainedModel(module=vit, labels=[str(d) for d in range(10)], preprocess=PreprocessSpec(size=(32, 32))),
        "convnext_tiny": random_model("convnext_tiny"), "resnet18": random_model("resnet18"),
    }
    found = {}
    for name, source in sources.items():
        write_source_onnx(source, tmp_path / f"{name}.onnx")
        found[name] = find_transformer(onnx.load(str(tmp_path / f"{name}.onnx")))
    assert found["vit"] == find_transformer(vit)  # the graph and the modules agree
    assert found["convnext_tiny"] is None and found["resnet18"] is None


@pytest.mark.slow
def test_a_cnn_keeps_the_cnn_settings(trained_model, small_train, tmp_path) -> None:
    bundle = _quantize(trained_model, "onnx", small_train, tmp_path / "cnn")
    _assert_int8_with_parity(bundle)
    assert "transformer" not in bundle.manifest.compression["quantize"]
    assert FLOAT_NODES_NOTE not in bundle.manifest.compression
