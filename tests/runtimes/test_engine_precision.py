"""Engine precision is read from the engine's own plan, never copied from the manifest.

Each test builds a tiny convolutional model itself, writes it as a bundle in the format under test,
then changes what the *engine* does (graph optimisation level, precision hint, quantised layers) and
checks that the reported precision follows the engine, not the bundle's label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgevision.bundle import Bundle, InputSpec, Manifest, PreprocessSpec, SourceInfo, write_manifest
from edgevision.runtimes import load_runtime
from edgevision.runtimes.precision import UNKNOWN, EnginePrecision, normalise

torch = pytest.importorskip("torch")

SIZE = 16
CLASSES = 4


class TinyNet(torch.nn.Module):
    """Two convolutions and a classifier: three compute layers."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, CLASSES)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def write_bundle(directory: Path, *, format: str, precision: str, files: tuple[str, ...], layout: str = "NCHW",
                 batch: int = -1, input_name: str = "input", output_name: str = "logits") -> Bundle:
    shape = (batch, 3, SIZE, SIZE) if layout == "NCHW" else (batch, SIZE, SIZE, 3)
    manifest = Manifest(
        name=directory.name, format=format, precision=precision, model_files=files,
        input=InputSpec(name=input_name, shape=shape, layout=layout), output_name=output_name, num_classes=CLASSES,
        preprocess=PreprocessSpec(size=(SIZE, SIZE)), labels=tuple(str(i) for i in range(CLASSES)),
        source=SourceInfo(sha256="0" * 64),
    )
    write_manifest(directory, manifest)
    return Bundle.load(directory)


def calibration(n: int = 8, layout: str = "NCHW") -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((1, 3, SIZE, SIZE), dtype=np.float32) for _ in range(n)]
    return batches if layout == "NCHW" else [b.transpose(0, 2, 3, 1).copy() for b in batches]


# -- the summary -------------------------------------------------------------------------------


def test_summary_names_int8_first_then_the_rest_by_count():
    assert EnginePrecision({"int8": 20, "fp32": 1}).summary == "int8+fp32"
    assert EnginePrecision({"fp32": 1, "bf16": 5}).summary == "bf16+fp32"
    assert EnginePrecision({"int8": 3}).summary == "int8"
    assert EnginePrecision.unknown("no plan").summary == UNKNOWN
    assert [normalise(n) for n in ("u8", "i8", "f32", "FLOAT", "float16", "bf16", "i32")] == [
        "int8", "int8", "fp32", "fp32", "fp16", "bf16", None,
    ]


# -- ONNX Runtime ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from edgevision.export.onnx import convert_onnx_to_fp16

    root = tmp_path_factory.mktemp("ort-precision")
    paths = {}
    for precision in ("fp32", "fp16", "int8"):
        (root / precision).mkdir()
        paths[precision] = root / precision / "model.onnx"
    torch.onnx.export(
        TinyNet().eval(), torch.zeros(1, 3, SIZE, SIZE), str(paths["fp32"]), dynamo=False, opset_version=17,
        input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    paths["fp16"].write_bytes(paths["fp32"].read_bytes())
    convert_onnx_to_fp16(paths["fp16"])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter({"input": b} for b in calibration())

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(paths["fp32"]), str(paths["int8"]), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    conv_inputs = {
        p: {node.op_type for node in onnx.load(str(path)).graph.node} for p, path in paths.items()
    }
    assert "DequantizeLinear" in conv_inputs["int8"] and "QLinearConv" not in conv_inputs["int8"]  # QDQ, not fused
    return {p: write_bundle(path.parent, format="onnx", precision=p, files=("model.onnx",)) for p, path in paths.items()}


def _ort(bundle: Bundle, level: str = "all"):
    from edgevision.runtimes.onnxruntime import ONNXRuntimeOptions

    return load_runtime(bundle, "onnxruntime", options=ONNXRuntimeOptions(threads=1, graph_optimization=level))


def test_onnxruntime_fp16_bundle_on_cpu_reports_the_fp32_it_computes_in(onnx_files):
    import onnx

    bundle = onnx_files["fp16"]
    weights = {init.data_type for init in onnx.load(str(bundle.model_path)).graph.initializer}
    assert onnx.TensorProto.FLOAT16 in weights and bundle.manifest.precision.value == "fp16"  # the file's label
    for level in ("disable", "all"):
        with _ort(bundle, level) as engine:
            assert engine.engine_precision == "fp32", engine.precision_report
            assert engine.precision_report.layers == {"fp32": 3}
            assert engine.precision_report.source == "ONNX Runtime optimised graph"
    with _ort(bundle, "disable") as engine:  # unoptimised, ORT's inserted casts are still visible
        assert "cast to fp32" in engine.precision_report.note


def test_onnxruntime_qdq_int8_is_int8_only_when_the_optimiser_fuses_it(onnx_files):
    with _ort(onnx_files["int8"], "all") as fused:
        assert fused.engine_precision == "int8" and fused.precision_report.layers == {"int8": 3}
    with _ort(onnx_files["int8"], "disable") as unfused:  # DequantizeLinear → fp32 Conv: not int8 arithmetic
        assert unfused.engine_precision == "fp32"
    with _ort(onnx_files["fp32"]) as fp32:
        assert fp32.engine_precision == "fp32"


def test_engine_config_records_the_session_settings(onnx_files):
    from edgevision.runtimes.onnxruntime import ONNXRuntimeOptions

    options = ONNXRuntimeOptions(threads=1, allow_spinning=False, graph_optimization="basic")
    with load_runtime(onnx_files["fp32"], "onnxruntime", options=options) as engine:
        config = engine.engine_config
    assert config["spinning"] is False and config["threads"] == 1 and config["engine_threads"] == 1
    assert config["graph_optimization"] == "basic" and config["providers"] == "CPUExecutionProvider"


# -- OpenVINO ----------------------------------------------------------------------------------


def _openvino_bundle(root: Path, name: str, precision: str, *, ignored_types: tuple[str, ...] | None = None) -> Bundle:
    ov = pytest.importorskip("openvino")
    from edgevision.export.openvino import save_ir
    from edgevision.types import Precision

    model = ov.convert_model(TinyNet().eval(), example_input=torch.zeros(1, 3, SIZE, SIZE),
                             input=[ov.PartialShape([-1, 3, SIZE, SIZE])])
    if ignored_types is not None:
        nncf = pytest.importorskip("nncf")
        ignored = nncf.IgnoredScope(types=list(ignored_types)) if ignored_types else None
        model = nncf.quantize(model, nncf.Dataset(calibration()), subset_size=8, ignored_scope=ignored)
    directory = root / name
    directory.mkdir()
    artifact = save_ir(model, directory, precision=Precision(precision))
    return write_bundle(directory, format="openvino", precision=precision, files=artifact.model_files,
                        input_name=artifact.input_name, output_name=artifact.output_name)


@pytest.fixture(scope="module")
def openvino_bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov-precision")
    return {
        "fp32": _openvino_bundle(root, "fp32", "fp32"),
        "int8": _openvino_bundle(root, "int8", "int8", ignored_types=()),
        "int8-float-classifier": _openvino_bundle(root, "int8-fc", "int8", ignored_types=("MatMul",)),
    }


def _cpu_has_bf16() -> bool:
    import openvino as ov

    from edgevision.runtimes.openvino import cpu_has_bf16

    return cpu_has_bf16(ov.Core())


def _ov(bundle: Bundle, **options):
    from edgevision.runtimes.openvino import OpenVINOOptions

    return load_runtime(bundle, "openvino", options=OpenVINOOptions(threads=1, **options))


def test_openvino_int8_bundle_reports_its_compiled_layers(openvino_bundles):
    with _ov(openvino_bundles["int8"]) as engine:
        assert engine.engine_precision == "int8"
        assert engine.precision_report.layers == {"int8": 3}
        assert "runtime model" in engine.precision_report.source
    with _ov(openvino_bundles["int8-float-classifier"], precision_hint="f32") as engine:
        assert engine.engine_precision == "int8+fp32" and engine.precision_report.layers == {"int8": 2, "fp32": 1}


def test_openvino_precision_hint_changes_what_is_reported(openvino_bundles):
    if not _cpu_has_bf16():
        pytest.skip("this CPU has no bf16 (avx512_bf16/amx_bf16): OpenVINO computes f32 whatever the hint")
    mixed = openvino_bundles["int8-float-classifier"]
    with _ov(mixed, precision_hint="bf16") as bf16, _ov(mixed, precision_hint="f32") as f32:
        assert (bf16.engine_precision, f32.engine_precision) == ("int8+bf16", "int8+fp32")
    with _ov(openvino_bundles["fp32"], precision_hint="bf16") as bf16, _ov(openvino_bundles["fp32"]) as default:
        assert (bf16.engine_precision, default.engine_precision) == ("bf16", "fp32")


def test_openvino_int8_runs_in_the_device_default_precision_and_fp32_in_f32(openvino_bundles):
    with _ov(openvino_bundles["int8"]) as int8, _ov(openvino_bundles["fp32"]) as fp32:
        assert int8.requested_precision is None and int8.engine_config["precision_hint"] is None
        assert fp32.requested_precision.value == "f32" and fp32.engine_config["inference_precision"] == "fp32"


def test_openvino_static_batch_compiles_a_static_model_with_the_same_numbers(openvino_bundles):
    bundle = openvino_bundles["fp32"]
    batch = calibration(3)
    batch = np.concatenate(batch)
    with _ov(bundle) as dynamic, _ov(bundle, static_batch=2) as static:
        assert dynamic.engine_config["static_shape"] is False and dynamic.fixed_batch is None
        assert static.engine_config["static_shape"] is True and static.fixed_batch == 2
        assert tuple(static._compiled.inputs[0].get_shape()) == (2, 3, SIZE, SIZE)
        np.testing.assert_allclose(static.infer(batch), dynamic.infer(batch), rtol=1e-4, atol=1e-4)  # 2 + padded 1
        np.testing.assert_allclose(static.infer(batch[:1]), dynamic.infer(batch[:1]), rtol=1e-4, atol=1e-4)


def test_openvino_engine_config_is_the_compiled_models_record(openvino_bundles):
    with _ov(openvino_bundles["fp32"], streams=1, performance_hint="THROUGHPUT") as engine:
        config = engine.engine_config
    assert config["performance_hint"] == "THROUGHPUT" and config["streams"] == 1 and config["engine_threads"] == 1
    assert set(config) >= {"threads", "precision_hint", "streams", "spinning", "static_shape"}


# -- LiteRT ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tflite_bundles(tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    litert_torch = pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from ai_edge_quantizer import quantizer, recipe

    from edgevision.export.tflite import cast_weights_to_fp16

    root = tmp_path_factory.mktemp("tflite-precision")
    paths = {p: root / p / "model.tflite" for p in ("fp32", "fp16", "int8")}
    for path in paths.values():
        path.parent.mkdir()
    nhwc = litert_torch.to_channel_last_io(TinyNet().eval(), args=[0]).eval()
    litert_torch.convert(nhwc, (torch.zeros(1, SIZE, SIZE, 3),)).export(str(paths["fp32"]))
    paths["fp16"].write_bytes(paths["fp32"].read_bytes())
    cast_weights_to_fp16(paths["fp16"])
    engine = quantizer.Quantizer(str(paths["fp32"]), recipe.static_wi8_ai8())
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(paths["fp32"])).get_signature_list()
    signature = next(iter(signatures))
    input_name = signatures[signature]["inputs"][0]
    ranges = engine.calibrate({signature: [{input_name: b} for b in calibration(layout="NHWC")]})
    paths["int8"].write_bytes(bytes(engine.quantize(ranges).quantized_model))
    interpreter = Interpreter(model_path=str(paths["fp32"]))
    details = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    return {
        p: write_bundle(path.parent, format="tflite", precision=p, files=("model.tflite",), layout="NHWC", batch=1,
                        input_name=details[0]["name"], output_name=details[1]["name"])
        for p, path in paths.items()
    }


@pytest.mark.parametrize("xnnpack", [True, False])
def test_litert_reports_the_kernels_its_tensors_select(tflite_bundles, xnnpack):
    from edgevision.runtimes.tflite import TFLiteOptions

    def reported(precision: str) -> EnginePrecision:
        with load_runtime(tflite_bundles[precision], "tflite", options=TFLiteOptions(threads=1, xnnpack=xnnpack)) as e:
            assert e.engine_config["xnnpack_applied"] is xnnpack
            return e.precision_report

    assert reported("int8").summary == "int8" and reported("int8").layers == {"int8": 3}
    assert reported("fp32").summary == "fp32"
    fp16 = reported("fp16")  # fp16 weights, dequantised: the kernels are fp32, whatever the file says
    assert fp16.summary == "fp32" and "fp16 weight tensors dequantised" in fp16.note


# -- engines that cannot say -------------------------------------------------------------------


def test_an_engine_without_a_reader_says_unknown_not_the_manifest(onnx_files):
    from edgevision.runtimes.base import Runtime
    from edgevision.runtimes.onnxruntime import ONNXRuntime

    class Opaque(ONNXRuntime):
        """A third-party engine that has no way to report its precision."""

        name = "opaque"
        _read_precision = Runtime._read_precision

    with Opaque(onnx_files["fp16"]) as engine:
        assert engine.engine_precision == UNKNOWN and "does not report" in engine.precision_report.source
