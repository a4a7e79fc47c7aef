"""A Vision Transformer through export: OpenVINO falls back to the ONNX route when tracing fails, and a
parity whose source outputs do not vary (the random-init ViT's zeroed classifier) is refused, not passed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision import errors
from edgevision.bundle import PreprocessSpec
from edgevision.export import ParityConfig, export
from edgevision.export.parity import MIN_OUTPUT_SPREAD, compare_logits, output_spread
from edgevision.model import TrainedModel
from edgevision.types import Precision

LABELS = ["a", "b", "c"]


def tiny_vit(*, zero_head: bool) -> TrainedModel:
    """torchvision's VisionTransformer at 32 px; its classifier starts at zero unless re-initialised."""
    import torch

    from edgevision._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    module = VisionTransformer(image_size=32, patch_size=8, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32,
                               num_classes=len(LABELS))
    if not zero_head:
        torch.nn.init.normal_(module.heads.head.weight, std=0.5)
    return TrainedModel(module=module, labels=LABELS, preprocess=PreprocessSpec(size=(32, 32)), name="vit")


def test_vacuous_parity_is_refused_with_the_reason(tmp_path):
    model = tiny_vit(zero_head=True)
    with pytest.raises(errors.ParityError, match="parity not established.*do not vary") as raised:
        export(model, tmp_path / "vit", format="onnx")
    assert "initialise its last layer" in str(raised.value)
    assert not (tmp_path / "vit").exists()


def test_output_spread_tells_constant_from_varying_outputs():
    rng = np.random.default_rng(0)
    assert output_spread(np.zeros((8, 3), np.float32)) == 0.0
    assert output_spread(np.full((8, 3), 7.0, np.float32)) == 0.0  # constant, not zero
    assert output_spread(rng.standard_normal((1, 3)).astype(np.float32)) == 0.0  # one input shows no variation
    assert output_spread(rng.standard_normal((8, 3)).astype(np.float32)) > 0.5
    offset = 1000.0 + 1e-5 * rng.standard_normal((8, 3))  # a large constant with float noise on it
    assert output_spread(offset) < MIN_OUTPUT_SPREAD


def test_constant_logits_fail_even_when_the_engine_matches_exactly():
    logits = np.full((16, 3), 2.5, np.float32)
    report = compare_logits(logits, logits.copy(), precision=Precision.FP32, config=ParityConfig(), engine="e",
                            engine_precision="fp32", data="random")
    assert report.max_abs_diff == 0.0 and not report.passed and report.output_spread == 0.0


def test_one_class_for_every_input_is_not_established_where_top1_is_the_only_check():
    """A model that predicts one class everywhere (a barely trained ResNet at val top-1 10 %): its varying logits
    still test an FP32 export against the tolerance, but an INT8 export's top-1 agreement would be vacuous."""
    from edgevision.export.parity import describe_failure

    rng = np.random.default_rng(0)
    logits = rng.standard_normal((32, 4)).astype(np.float32)
    logits[:, 2] += 10.0  # class 2 wins for every input
    check = {precision: compare_logits(logits, logits + 1e-6, precision=precision, config=ParityConfig(data=Path("val")),
                                       engine="e", engine_precision=precision.value, data="val")
             for precision in (Precision.FP32, Precision.INT8)}
    assert check[Precision.FP32].passed and check[Precision.FP32].source_classes == 1
    assert not check[Precision.INT8].passed and check[Precision.INT8].top1_agreement == 1.0
    assert "parity not established" in describe_failure(check[Precision.INT8])
    varied = logits.copy()
    varied[:4, 0] += 20.0  # two classes: agreement means something again
    assert compare_logits(varied, varied, precision=Precision.INT8, config=ParityConfig(data=Path("val")), engine="e",
                          engine_precision="int8", data="val").passed


def test_vit_exports_to_openvino_through_onnx_when_tracing_fails(tmp_path):
    """torchvision's ViT fails OpenVINO's TorchScript trace (its graph differs between two traces)."""
    model = tiny_vit(zero_head=False)
    bundle = export(model, tmp_path / "ov", format="openvino")
    assert bundle.manifest.conversion.startswith("onnx (tracing the torch module failed")
    assert bundle.manifest.parity.passed and bundle.manifest.parity.output_spread > MIN_OUTPUT_SPREAD
    assert bundle.manifest.parity.max_abs_diff < 1e-4


def test_a_traceable_model_keeps_the_trace_route(trained_model, tmp_path):
    bundle = export(trained_model, tmp_path / "ov", format="openvino")
    assert bundle.manifest.conversion == "torch trace"


def test_fp16_vit_loads_in_onnx_runtime(tmp_path):
    """ORT's NchwcTransformer segfaults on this FP16 graph (onnxruntime #28392); the runtime turns it off for FP16."""
    import torch

    from edgevision.model import build_architecture

    torch.manual_seed(0)
    module = build_architecture("vit_tiny", num_classes=len(LABELS), input_size=(32, 32))
    torch.nn.init.normal_(module.heads.head.weight, std=0.5)
    model = TrainedModel(module=module, labels=LABELS, preprocess=PreprocessSpec(size=(32, 32)), name="vit_tiny",
                         architecture="vit_tiny")
    bundle = export(model, tmp_path / "fp16", format="onnx", precision="fp16")
    assert bundle.manifest.parity.passed
