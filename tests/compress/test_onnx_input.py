"""ONNX in: a classifier built outside edgevision (here with the onnx.helper API) becomes bundles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgevision import PreprocessSpec  # noqa: E402
from edgevision.compress.calibration import CalibrationConfig  # noqa: E402
from edgevision.compress.onnx_input import OnnxModel, export_onnx_model  # noqa: E402
from edgevision.compress.quantize import quantize  # noqa: E402
from edgevision.data.folder import ImageFolder  # noqa: E402
from edgevision.errors import CompressionError, ConfigError  # noqa: E402
from edgevision.preprocess import preprocess_batch  # noqa: E402
from edgevision.types import Format, Layout, Precision  # noqa: E402
from tests.compress.engine_accuracy import engine_accuracy  # noqa: E402

LABELS = [str(d) for d in range(10)]
SPEC = PreprocessSpec(size=(32, 32))


def _graph(nodes, initializers, *, input_shape, output="scores", output_dim=10):  # noqa: ANN001, ANN202
    graph = helper.make_graph(
        nodes, "outside", [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", output_dim])], initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="handmade")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _features(nodes, initializers):  # noqa: ANN001, ANN202
    """Conv 3→8 (seeded) → ReLU → 2×2 average pool → flatten: 2048 features per 32×32 image."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.3, size=(8, 3, 3, 3)).astype(np.float32)
    initializers += [numpy_helper.from_array(weight, "conv.weight"), numpy_helper.from_array(np.zeros(8, np.float32), "conv.bias")]
    nodes += [
        helper.make_node("Conv", ["pixels", "conv.weight", "conv.bias"], ["c"], name="features/conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="features/relu"),
        helper.make_node("AveragePool", ["r"], ["p"], name="features/pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="features/flatten"),
    ]


@pytest.fixture(scope="module")
def outside_onnx(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nearest-centroid digit classifier: conv features, then a Gemm whose rows are class centroids."""
    nodes: list = []
    initializers: list = []
    _features(nodes, initializers)
    feature_model = _graph(nodes, initializers, input_shape=["n", 3, 32, 32], output="f", output_dim=2048)
    session = ort.InferenceSession(feature_model.SerializeToString(), providers=["CPUExecutionProvider"])
    folder = ImageFolder.open(digits.train)
    images, labels = zip(*folder)
    nchw = preprocess_batch(list(images), SPEC, _nchw_spec())
    features = session.run(["f"], {"pixels": nchw})[0]
    centroids = np.stack([features[np.asarray(labels) == k].mean(0) for k in range(10)]).astype(np.float32)
    bias = (-0.5 * (centroids**2).sum(1)).astype(np.float32)
    initializers += [numpy_helper.from_array(centroids, "head.weight"), numpy_helper.from_array(bias, "head.bias")]
    nodes.append(helper.make_node("Gemm", ["f", "head.weight", "head.bias"], ["scores"], name="head/gemm", transB=1))
    path = tmp_path_factory.mktemp("outside") / "centroids.onnx"
    onnx.save(_graph(nodes, initializers, input_shape=["n", 3, 32, 32]), str(path))
    return path


def _nchw_spec():  # noqa: ANN202
    from edgevision.bundle import InputSpec

    return InputSpec(name="pixels", shape=(1, 3, 32, 32))


@pytest.fixture(scope="module")
def onnx_model(outside_onnx: Path) -> OnnxModel:
    return OnnxModel.open(outside_onnx, labels=LABELS, preprocess=SPEC, name="centroids")


def test_open_reads_the_input_from_the_graph(onnx_model: OnnxModel) -> None:
    assert (onnx_model.input_name, onnx_model.output_name) == ("pixels", "scores")
    assert onnx_model.layout is Layout.NCHW and onnx_model.dynamic_batch
    assert onnx_model.input_size == (32, 32) and onnx_model.producer.startswith("handmade")
    logits = onnx_model.logits(np.zeros((3, 3, 32, 32), np.float32))
    assert logits.shape == (3, 10)


def test_open_infers_nhwc_and_a_fixed_batch(tmp_path: Path) -> None:
    nodes = [helper.make_node("Transpose", ["pixels"], ["t"], perm=[0, 3, 1, 2], name="to_nchw")]
    initializers: list = []
    nodes_rest: list = []
    _features(nodes_rest, initializers)
    nodes_rest[0].input[0] = "t"
    head = numpy_helper.from_array(np.ones((10, 2048), np.float32), "w")
    nodes = nodes + nodes_rest + [helper.make_node("Gemm", ["f", "w"], ["scores"], transB=1)]
    path = tmp_path / "nhwc.onnx"
    onnx.save(_graph(nodes, [*initializers, head], input_shape=[1, 32, 32, 3]), str(path))
    model = OnnxModel.open(path, labels=LABELS, preprocess=SPEC)
    assert model.layout is Layout.NHWC and not model.dynamic_batch
    assert model.logits(np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_open_rejects_what_does_not_fit(outside_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outputs shape \(1, 10\) for one image; expected \(1, 5\)"):
        OnnxModel.open(outside_onnx, labels=LABELS[:5], preprocess=SPEC)
    with pytest.raises(ConfigError, match="pass PreprocessSpec\\(size=\\(32, 32\\)"):
        OnnxModel.open(outside_onnx, labels=LABELS, preprocess=PreprocessSpec(size=(64, 64)))
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf at all")
    from edgevision.errors import ModelFileError

    with pytest.raises(ModelFileError, match="not a readable ONNX model"):
        OnnxModel.open(broken, labels=LABELS, preprocess=SPEC)


def test_float_bundles_match_the_original(onnx_model: OnnxModel, digits, tmp_path: Path) -> None:
    from edgevision.export import ParityConfig

    fp32 = export_onnx_model(onnx_model, tmp_path / "fp32", parity=ParityConfig(data=digits.val, max_images=100))
    assert fp32.manifest.source.framework == "onnx" and fp32.manifest.input.name == "pixels"
    assert fp32.parity_passed and fp32.manifest.parity.max_abs_diff < 1e-4
    ov = export_onnx_model(onnx_model, tmp_path / "ov16", format=Format.OPENVINO, precision=Precision.FP16)
    assert ov.manifest.format is Format.OPENVINO and ov.manifest.precision is Precision.FP16
    assert ov.parity_passed and ov.manifest.parity.engine == "openvino"
    assert engine_accuracy(fp32, digits.val) > 0.7  # the centroid classifier really classifies


def test_int8_from_onnx_is_quantised_and_benched(onnx_model: OnnxModel, digits, small_train: Path, tmp_path: Path) -> None:
    from edgevision.bench import BenchConfig, bench

    original = engine_accuracy(export_onnx_model(onnx_model, tmp_path / "fp32"), digits.val)
    bundle = quantize(
        onnx_model, tmp_path / "int8", format=Format.ONNX, calibration=CalibrationConfig(data=small_train),
        validation=digits.val, max_accuracy_drop=0.02,
    )
    assert bundle.manifest.precision is Precision.INT8 and bundle.manifest.source.framework == "onnx"
    assert "ONNX Runtime static INT8" in bundle.manifest.compression["quantize"]
    assert bundle.parity_passed and bundle.manifest.parity.top1_agreement >= 0.98
    quantized_ops = {node.op_type for node in onnx.load(str(bundle.model_path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= quantized_ops
    assert engine_accuracy(bundle, digits.val) >= original - 0.02
    report = bench([bundle], config=BenchConfig(isolate=False, iterations=5, warmup=1))
    (row,) = report.rows
    assert (row.runtime, row.precision, row.engine_precision) == ("onnxruntime", "int8", "int8")
    assert row.latency.p50_ms > 0 and row.size_mb > 0


def test_int8_openvino_from_onnx(onnx_model: OnnxModel, small_train: Path, tmp_path: Path) -> None:
    bundle = quantize(onnx_model, tmp_path / "ov8", format="openvino", calibration=CalibrationConfig(data=small_train))
    assert bundle.manifest.format is Format.OPENVINO and bundle.manifest.precision is Precision.INT8
    assert bundle.parity_passed and bundle.manifest.parity.data.startswith(str(small_train))


def test_torch_only_stages_refuse_an_onnx_model(onnx_model: OnnxModel, digits, small_train: Path, tmp_path: Path) -> None:
    from edgevision.compress import DistillConfig, PruneConfig, distill, prune

    with pytest.raises(CompressionError, match="need the torch model"):
        prune(onnx_model, config=PruneConfig(channel_ratio=0.5))
    with pytest.raises(CompressionError, match="need the torch model"):
        distill(onnx_model, onnx_model, train_data=small_train, val_data=digits.val, config=DistillConfig(epochs=1))
    with pytest.raises(CompressionError, match="TFLite"):
        quantize(onnx_model, tmp_path / "t", format="tflite", calibration=CalibrationConfig(data=small_train))
    with pytest.raises(CompressionError, match="TFLite"):
        export_onnx_model(onnx_model, tmp_path / "t2", format="tflite")
    assert not (tmp_path / "t").exists() and not (tmp_path / "t2").exists()
