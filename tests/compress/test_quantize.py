"""INT8 quantisation per engine: bundles that run, stay within budget and keep ignored layers float."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from edgevision.bundle import Bundle
from edgevision.compress.calibration import (
    CalibrationConfig,
    CalibrationSet,
    FewCalibrationImagesWarning,
    OrtCalibrationReader,
)
from edgevision.compress.quantize import INT8_MIN_TOP1_AGREEMENT, int8_speed_verdict, quantize
from edgevision.errors import ConfigError
from edgevision.types import Format, Layout, Precision
from tests.compress.engine_accuracy import engine_accuracy

BUDGET = 0.015  # 1.5 points of top-1


@pytest.fixture(scope="module")
def original_accuracy(onnx_bundle, digits) -> float:
    """The FP32 model's val accuracy (its parity-checked ONNX bundle, which agrees with torch)."""
    return engine_accuracy(onnx_bundle, digits.val)


@pytest.fixture(scope="module", params=[Format.ONNX, Format.OPENVINO, Format.TFLITE])
def int8_bundle(request, trained_model, digits, small_train, tmp_path_factory) -> Bundle:
    """One INT8 bundle per format, calibrated on 300 images, guarded on the val split; fc kept float where possible."""
    fmt = request.param
    if fmt is Format.TFLITE:
        pytest.importorskip("ai_edge_quantizer")
    ignored = () if fmt is Format.TFLITE else ("fc",)
    return quantize(
        trained_model, tmp_path_factory.mktemp("int8") / fmt.value, format=fmt,
        calibration=CalibrationConfig(data=small_train), ignored_scope=ignored,
        validation=digits.val, max_accuracy_drop=BUDGET,
    )


@pytest.mark.slow
def test_int8_bundle_runs_within_the_accuracy_budget(int8_bundle: Bundle, original_accuracy: float, digits) -> None:
    manifest = int8_bundle.manifest
    assert manifest.precision is Precision.INT8
    assert "300 calibration images" in manifest.compression["quantize"]
    assert "drop" in manifest.compression["accuracy"]
    assert int8_bundle.parity_passed
    assert manifest.parity.min_top1_agreement == INT8_MIN_TOP1_AGREEMENT
    assert manifest.parity.engine_precision.startswith("int8")
    assert engine_accuracy(int8_bundle, digits.val) >= original_accuracy - BUDGET
    assert Bundle.load(int8_bundle.path).size_bytes < 0.5 * 44e6  # resnet18 FP32 weights are ≈ 44 MB


@pytest.mark.slow
def test_ignored_scope_keeps_the_classifier_in_float(int8_bundle: Bundle) -> None:
    fmt = int8_bundle.manifest.format
    if fmt is Format.TFLITE:
        pytest.skip("TFLite INT8 is full-integer: no layer stays float (ignored_scope is refused)")
    assert "kept in float: fc" in int8_bundle.manifest.compression["quantize"]
    if fmt is Format.ONNX:
        import onnx

        graph = onnx.load(str(int8_bundle.model_path)).graph
        producer = {out: node.op_type for node in graph.node for out in node.output}
        weights = {tensor.name: tensor for tensor in graph.initializer}
        by_name = {node.name: node for node in graph.node}
        fc, conv = by_name["/fc/Gemm"], by_name["/layer1/layer1.0/conv1/Conv"]
        assert fc.input[1] in weights and weights[fc.input[1]].data_type == onnx.TensorProto.FLOAT  # float weights
        assert producer.get(conv.input[1]) == "DequantizeLinear"  # int8 weights, dequantised
        assert weights[by_name[_producer_name(graph, conv.input[1])].input[0]].data_type == onnx.TensorProto.INT8
    else:
        import openvino as ov

        from edgevision.compress.quantize.openvino import float_weight_layers

        model = ov.Core().read_model(str(int8_bundle.model_path))
        assert float_weight_layers(model) == ["/fc/Gemm/WithoutBiases"]
        fake_quantize = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
        assert len(fake_quantize) >= 15  # every convolution's input is quantised


def _producer_name(graph, tensor: str) -> str:  # noqa: ANN001
    return next(node.name for node in graph.node if tensor in node.output)


def test_ignored_scope_that_matches_nothing_suggests_a_module(trained_model, small_train, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'fcc' matches no layer.*Did you mean 'fc'"):
        quantize(
            trained_model, tmp_path / "q", format="onnx", calibration=CalibrationConfig(data=small_train),
            ignored_scope=("fcc",),
        )
    assert not (tmp_path / "q").exists()
    assert list(tmp_path.iterdir()) == []  # no temp dir left behind either


def test_options_are_checked_before_any_work(trained_model, small_train, digits, tmp_path: Path) -> None:
    calibration = CalibrationConfig(data=small_train)
    cases = [
        (dict(format="onnx", calibration=calibration, validation=digits.val, max_accuracy_drop=1.5), "0.015 = 1.5 points"),
        (dict(format="onnx", calibration=calibration, max_accuracy_drop=0.01), "needs validation"),
        (dict(format="onnx"), "INT8 needs calibration images"),
        (dict(format="onnx", precision="fp32", calibration=calibration), "FP32 is not quantisation"),
        (dict(format="onnx", calibration=calibration, quantizer="tflite"), "writes tflite bundles"),
        (dict(format="onnx", calibration=calibration, quantizer="nncf"), "Unknown quantizer 'nncf'"),
        (dict(format="onnx", calibration=calibration, ignored_scope="fc"), "tuple of module names"),
        (dict(format="tflite", calibration=calibration, ignored_scope=("fc",)), "full-integer"),
    ]
    for options, message in cases:
        with pytest.raises((ConfigError, KeyError), match=message):
            quantize(trained_model, tmp_path / "q", **options)
        assert not (tmp_path / "q").exists()


def test_few_calibration_images_warn(trained_model, small_train: Path, tmp_path: Path) -> None:
    few = tmp_path / "few" / "3"
    few.mkdir(parents=True)
    for image in sorted((small_train / "3").iterdir())[:12]:
        (few / image.name).write_bytes(image.read_bytes())
    with pytest.warns(FewCalibrationImagesWarning, match="on 12 images.*reliable from about 300"):
        CalibrationSet(CalibrationConfig(data=few.parent), preprocess=trained_model.preprocess)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewCalibrationImagesWarning)
        full = CalibrationSet(CalibrationConfig(data=small_train), preprocess=trained_model.preprocess)
    assert len(full) == 300


def test_calibration_set_is_reiterable_and_seeded(trained_model, digits) -> None:
    config = CalibrationConfig(data=digits.train, max_images=300, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FewCalibrationImagesWarning)
        first = CalibrationSet(config, preprocess=trained_model.preprocess)
        again = CalibrationSet(config, preprocess=trained_model.preprocess)
    assert len(first) == 300 and first.folder.samples == again.folder.samples
    other = CalibrationSet(CalibrationConfig(data=digits.train, seed=2), preprocess=trained_model.preprocess)
    assert other.folder.samples != first.folder.samples
    samples = list(first)
    assert len(samples) == 300 and samples[0].shape == (1, 3, 32, 32) and samples[0].dtype == np.float32
    assert np.array_equal(next(iter(first)), samples[0])  # a second pass starts over
    batches = list(first.batches(64))
    assert [len(b) for b in batches] == [64] * 4  # one batch shape (TensorRT): the partial last batch is dropped


def test_ort_reader_follows_the_protocol(trained_model, small_train: Path) -> None:
    calibration = CalibrationSet(CalibrationConfig(data=small_train), preprocess=trained_model.preprocess)
    reader = OrtCalibrationReader(calibration, input_name="x", layout=Layout.NHWC, batch_size=128)
    shapes = []
    while (item := reader.get_next()) is not None:
        shapes.append(item["x"].shape)
    assert shapes == [(128, 32, 32, 3), (128, 32, 32, 3), (44, 32, 32, 3)] and len(reader) == 3
    reader.rewind()
    assert reader.get_next()["x"].shape == (128, 32, 32, 3)


def test_tensorrt_calibrator_reads_the_same_images(trained_model, small_train: Path) -> None:
    from edgevision.bundle import InputSpec
    from edgevision.compress.calibration import tensorrt_calibrator

    calibration = CalibrationSet(CalibrationConfig(data=small_train), preprocess=trained_model.preprocess)
    calibrator = tensorrt_calibrator(calibration, input_spec=InputSpec(name="input", shape=(-1, 3, 32, 32)), batch_size=8)
    assert calibrator.batch_shape == (8, 3, 32, 32)
    batches = list(calibrator.batches())
    assert len(batches) == 37 and np.array_equal(batches[0][0], next(iter(calibration))[0])
    assert len(list(calibrator.batches())) == 37  # TensorRT may read it again


def _row(runtime: str, precision: str, p50: float):  # noqa: ANN202
    from edgevision.bench import BenchResult, LatencyStats

    latency = LatencyStats(n=10, p50_ms=p50, p90_ms=p50, p99_ms=p50, mean_ms=p50, std_ms=0.0, min_ms=p50)
    return BenchResult(
        name=f"{runtime}-{precision}", bundle="b", format="onnx", precision=precision, runtime=runtime,
        engine_precision=precision, threads=2, batch_size=1, latency=latency, throughput_ips=1000 / p50,
        peak_rss_mb=100.0, size_mb=10.0,
    )


def test_int8_speed_verdict_says_plainly_when_int8_is_not_faster() -> None:
    assert int8_speed_verdict(_row("openvino", "fp32", 8.0), _row("openvino", "int8", 2.0)).startswith("INT8 is 4.0× faster")
    slower = int8_speed_verdict(_row("onnxruntime", "fp32", 0.6), _row("onnxruntime", "int8", 2.4))
    assert slower.startswith("INT8 is SLOWER than FP32 here (4.0× slower)") and "onnxruntime, 2 thread(s)" in slower
    same = int8_speed_verdict(_row("onnxruntime", "fp32", 7.8), _row("onnxruntime", "int8", 7.5))
    assert same.startswith("INT8 is NOT meaningfully faster")


def test_tensorrt_int8(trained_model, small_train: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    bundle = quantize(
        trained_model, tmp_path / "trt", format="onnx", quantizer="tensorrt", calibration=CalibrationConfig(data=small_train),
    )
    assert bundle.parity_passed and bundle.manifest.parity.engine == "tensorrt"
    assert bundle.manifest.parity.engine_precision.startswith("int8")  # "int8+fp16" where TensorRT keeps layers in fp16
