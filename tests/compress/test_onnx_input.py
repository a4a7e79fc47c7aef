"""ONNX in: a classifier built outside edgevision (here with the onnx.helper API) becomes bundles."""

from __future__ import annotations

import json
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


def test_an_onnx_model_is_a_model_source(onnx_model: OnnxModel) -> None:
    """The same interface as TrainedModel: bundle writing, parity and the guard never ask which one they got."""
    import dataclasses

    from edgevision.source import ModelSource
    from edgevision.types import Task

    assert isinstance(onnx_model, ModelSource) and onnx_model.framework == "onnx"
    assert onnx_model.task is Task.CLASSIFY and onnx_model.detection is None
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    np.testing.assert_array_equal(onnx_model.reference_outputs(batch), onnx_model.logits(batch))
    as_detector = dataclasses.replace(onnx_model, task=Task.DETECT)  # the output check follows the task
    with pytest.raises(ConfigError, match=r"outputs shape \(1, 10\) for one image, which looks like a classifier's "
                       r"logits; task detect expects a detector's raw head \(1, 4 \+"):
        as_detector._check_output()


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
    print(f"\nopenvino int8 from onnx: top-1 agreement {bundle.manifest.parity.top1_agreement:.4f}")


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


# -- ONNX in, as real models come: dynamic batch/size, non-square, labels in metadata; through the CLI ----------------

#: Digits in the order a model of the metadata case was trained with: not the folders' sorted order.
SHUFFLED = ["3", "7", "0", "9", "1", "8", "2", "6", "4", "5"]


def _centroid_classifier(
    train: Path, path: Path, *, declared_shape: list, size: tuple[int, int], order: list[str] = LABELS,
    metadata: dict[str, str] | None = None,
) -> Path:
    """The nearest-centroid classifier of `outside_onnx`, at `size` (H, W), its input declared as `declared_shape`.

    Row k of the head is the centroid of digit order[k], so the logits are in `order`.
    """
    nodes: list = []
    initializers: list = []
    _features(nodes, initializers)
    features_per_image = 8 * (size[0] // 2) * (size[1] // 2)
    feature_model = _graph(nodes, initializers, input_shape=["n", 3, *size], output="f", output_dim=features_per_image)
    session = ort.InferenceSession(feature_model.SerializeToString(), providers=["CPUExecutionProvider"])
    from edgevision.bundle import InputSpec

    folder = ImageFolder.open(train)
    images, labels = zip(*folder)
    features = session.run(["f"], {"pixels": preprocess_batch(list(images), PreprocessSpec(size=size),
                                                               InputSpec(name="pixels", shape=(1, 3, *size)))})[0]
    names = np.asarray([folder.labels[i] for i in labels])
    centroids = np.stack([features[names == name].mean(0) for name in order]).astype(np.float32)
    bias = (-0.5 * (centroids**2).sum(1)).astype(np.float32)
    initializers += [numpy_helper.from_array(centroids, "head.weight"), numpy_helper.from_array(bias, "head.bias")]
    nodes.append(helper.make_node("Gemm", ["f", "head.weight", "head.bias"], ["scores"], name="head/gemm", transB=1))
    model = _graph(nodes, initializers, input_shape=declared_shape)
    for key, value in (metadata or {}).items():
        helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, key: value})
    onnx.save(model, str(path))
    return path


def _compress_cli(model: Path, digits, out: Path, *extra: str):  # noqa: ANN202
    from typer.testing import CliRunner

    from edgevision.cli import app

    return CliRunner().invoke(app, [
        "compress", str(model), "--data", str(digits.train.parent), "--quantize", "int8", "--export", "onnx",
        "--calibration-images", "100", "--max-accuracy-drop", "0.03", "-o", str(out), *extra,
    ])


def _check_int8_bundle(out: Path, digits, *, size: tuple[int, int], labels: list[str]) -> None:
    from edgevision.bundle import Bundle

    fp32, int8 = Bundle.load(out / "onnx-fp32"), Bundle.load(out / "onnx-int8")
    assert int8.manifest.precision is Precision.INT8 and int8.manifest.preprocess.size == size
    assert list(int8.manifest.labels) == labels
    assert int8.manifest.input.shape[2:] == size
    assert "top-1" in int8.manifest.compression["accuracy"]  # the accuracy guard ran
    original = engine_accuracy(fp32, digits.test)
    assert original > 0.7  # the centroid classifier really classifies, in the order its labels say
    assert engine_accuracy(int8, digits.test) >= original - 0.03
    report = (out / "compress_report.json").read_text()
    assert "int8_verdicts" in report and "INT8" in report and "test split" in report


@pytest.mark.parametrize(
    ("case", "declared", "size", "flags"),
    [
        ("minus-one-batch", [-1, 3, 32, 32], (32, 32), []),
        ("dynamic-hw", ["batch", 3, "height", "width"], (32, 32), ["--size", "32"]),
        ("non-square", [1, 3, 24, 40], (24, 40), []),
        ("non-square-dynamic", [-1, 3, -1, -1], (24, 40), ["--size", "24x40", "--export", "onnx,openvino"]),
    ],
)
def test_cli_compresses_real_world_onnx_to_int8(digits, tmp_path: Path, case: str, declared: list, size, flags) -> None:
    model = _centroid_classifier(digits.train, tmp_path / f"{case}.onnx", declared_shape=declared, size=size)
    result = _compress_cli(model, digits, tmp_path / "out", *flags)
    assert result.exit_code == 0, (result.output, result.exception)
    _check_int8_bundle(tmp_path / "out", digits, size=size, labels=LABELS)
    assert "INT8" in result.output  # the speed verdict is printed
    if "onnx,openvino" in flags:  # a dynamic H/W graph reaches OpenVINO with the input fixed to --size
        from edgevision.bundle import Bundle

        openvino = Bundle.load(tmp_path / "out" / "openvino-int8")
        assert openvino.manifest.input.shape[2:] == size
        assert engine_accuracy(openvino, digits.test) >= engine_accuracy(Bundle.load(tmp_path / "out" / "onnx-fp32"),
                                                                          digits.test) - 0.03


@pytest.mark.parametrize(
    "metadata",
    [
        {"names": str(dict(enumerate(SHUFFLED)))},  # Ultralytics: a Python dict literal
        {"labels": json.dumps(SHUFFLED)},
        {"classes": json.dumps(SHUFFLED)},
    ],
    ids=["ultralytics-names", "labels-json", "classes-json"],
)
def test_cli_takes_labels_from_the_model_metadata(digits, tmp_path: Path, metadata: dict[str, str]) -> None:
    model = _centroid_classifier(digits.train, tmp_path / "meta.onnx", declared_shape=["n", 3, 32, 32], size=(32, 32),
                                 order=SHUFFLED, metadata=metadata)
    result = _compress_cli(model, digits, tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)
    _check_int8_bundle(tmp_path / "out", digits, size=(32, 32), labels=SHUFFLED)
    assert "metadata" in json.loads((tmp_path / "out" / "compress_report.json").read_text())["notes"]["labels"]


def test_labels_that_disagree_with_the_metadata_are_refused(digits, tmp_path: Path) -> None:
    model = _centroid_classifier(digits.train, tmp_path / "meta.onnx", declared_shape=["n", 3, 32, 32], size=(32, 32),
                                 order=SHUFFLED, metadata={"names": str(dict(enumerate(SHUFFLED)))})
    result = _compress_cli(model, digits, tmp_path / "out", "--labels", ",".join(LABELS))
    assert isinstance(result.exception, ConfigError)
    message = str(result.exception)
    assert "different order" in message and "0, 1, 2, 3" in message and "3, 7, 0, 9" in message
    assert not (tmp_path / "out").exists()
    same = OnnxModel.open(model, labels=SHUFFLED, preprocess=SPEC)  # the same list is fine
    assert same.labels == SHUFFLED and "metadata" in same.notes["labels"]
    with pytest.raises(ConfigError, match="differs from the labels"):
        OnnxModel.open(model, labels=[f"digit {d}" for d in SHUFFLED], preprocess=SPEC)


def test_dynamic_size_needs_size_and_a_fixed_size_must_match(digits, tmp_path: Path) -> None:
    dynamic = _centroid_classifier(digits.train, tmp_path / "dyn.onnx", declared_shape=[-1, 3, "h", "w"], size=(32, 32))
    result = _compress_cli(dynamic, digits, tmp_path / "out")
    assert isinstance(result.exception, ConfigError) and "--size" in str(result.exception)
    assert "dynamic" in str(result.exception)
    fixed = _centroid_classifier(digits.train, tmp_path / "fixed.onnx", declared_shape=[1, 3, 24, 40], size=(24, 40))
    result = _compress_cli(fixed, digits, tmp_path / "out", "--size", "40x24")
    assert isinstance(result.exception, ConfigError) and "24x40 (height x width)" in str(result.exception)
    result = _compress_cli(fixed, digits, tmp_path / "out", "--export", "tflite")
    assert isinstance(result.exception, ConfigError) and "tflite" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_preprocessing_flags_are_recorded_in_the_manifest(digits, tmp_path: Path) -> None:
    from edgevision.cli.compress_onnx import parse_size, preprocess_from_flags
    from edgevision.types import ColorOrder, ResizePolicy

    assert parse_size("48x192") == (48, 192) and parse_size("32") == (32, 32)
    with pytest.raises(ConfigError, match="HxW"):
        parse_size("48by192")
    flags = preprocess_from_flags(size="32", color="bgr", resize="shorter_side_center_crop", resize_shorter=36,
                                  mean="127.5,127.5,127.5", std="127.5,127.5,127.5", scale="1")
    spec = flags.spec((32, 32))
    assert (spec.color_order, spec.resize) == (ColorOrder.BGR, ResizePolicy.SHORTER_SIDE_CENTER_CROP)
    assert (spec.resize_shorter, spec.scale, spec.mean) == (36, 1.0, (127.5,) * 3)
    with pytest.raises(ConfigError, match="--mean takes three"):
        preprocess_from_flags(size=None, color="rgb", resize="resize", resize_shorter=None, mean="0.5", std="1,1,1",
                              scale="1/255")
    model = _centroid_classifier(digits.train, tmp_path / "m.onnx", declared_shape=["n", 3, 32, 32], size=(32, 32))
    from typer.testing import CliRunner

    from edgevision.bundle import Bundle
    from edgevision.cli import app

    result = CliRunner().invoke(app, [
        "compress", str(model), "--data", str(digits.train.parent), "--quantize", "fp32", "--export", "onnx",
        "-o", str(tmp_path / "out"), "--color", "bgr", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
        "--scale", "1/255", "--resize", "shorter_side_center_crop", "--resize-shorter", "34",
    ])
    assert result.exit_code == 0, (result.output, result.exception)
    recorded = Bundle.load(tmp_path / "out" / "onnx-fp32").manifest.preprocess
    assert recorded.color_order is ColorOrder.BGR and recorded.resize is ResizePolicy.SHORTER_SIDE_CENTER_CROP
    assert (recorded.mean, recorded.std, recorded.resize_shorter) == ((0.5,) * 3, (0.25,) * 3, 34)
