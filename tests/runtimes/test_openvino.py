"""OpenVINO IR export and runtime: the shared contract for FP32 and FP16, plus OpenVINO specifics."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgevision import errors
from edgevision.bundle import Bundle
from edgevision.runtimes import load_runtime

from .contract import RuntimeContract
from .detect_contract import DetectRuntimeContract
from .segment_contract import SegmentRuntimeContract

ov = pytest.importorskip("openvino")

from edgevision.runtimes.openvino import (  # noqa: E402
    InferencePrecision, OpenVINOOptions, OpenVINORuntime, PerformanceHint,
)


def _export(trained_model, digits, tmp_path_factory, precision: str) -> Bundle:
    from edgevision.export import ParityConfig, export

    out = tmp_path_factory.mktemp(f"openvino-{precision}") / "bundle"
    return export(trained_model, out, format="openvino", precision=precision, parity=ParityConfig(data=digits.val))


@pytest.fixture(scope="module")
def fp32_bundle(trained_model, digits, tmp_path_factory) -> Bundle:
    return _export(trained_model, digits, tmp_path_factory, "fp32")


@pytest.fixture(scope="module")
def fp16_bundle(trained_model, digits, tmp_path_factory) -> Bundle:
    return _export(trained_model, digits, tmp_path_factory, "fp16")


def _images(runtime, n: int = 4) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, *runtime.input_spec.shape[1:]), dtype=np.float32)


class TestOpenVINOFP32(RuntimeContract):
    runtime_name = "openvino"
    format = "openvino"
    precision = "fp32"

    @pytest.fixture(scope="class")
    def bundle(self, fp32_bundle):
        return fp32_bundle

    def test_bundle_holds_ir_with_named_dynamic_batch_io(self, bundle):
        manifest = bundle.manifest
        assert manifest.model_files == ("model.xml", "model.bin")
        assert manifest.input.name == "input" and manifest.output_name == "logits"
        assert manifest.input.dynamic_batch and manifest.input.layout.value == "NCHW"
        assert manifest.versions["openvino"] == ov.__version__.split("-")[0]

    def test_engine_computes_in_f32_by_default(self, runtime, bundle):
        assert runtime.engine_precision == "fp32"
        assert bundle.manifest.parity.engine_precision == "fp32"
        assert bundle.manifest.parity.max_abs_diff < 1e-3

    def test_precision_hint_option_changes_engine_precision(self, bundle, runtime):
        options = OpenVINOOptions(precision_hint="BF16", threads=1)
        assert options.precision_hint is InferencePrecision.BF16
        if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            with pytest.raises(errors.ConfigError, match="avx512_bf16 or amx_bf16"):
                load_runtime(bundle, "openvino", options=options)
            return
        with load_runtime(bundle, "openvino", options=options) as low:
            assert low.engine_precision == "bf16"
            batch = _images(runtime)
            assert np.array_equal(low.infer(batch).argmax(1), runtime.infer(batch).argmax(1))

    def test_throughput_hint_gives_the_same_logits(self, bundle, runtime):
        options = OpenVINOOptions(performance_hint="throughput", threads=1)
        batch = _images(runtime, 5)
        with load_runtime(bundle, "openvino", options=options) as engine:
            np.testing.assert_allclose(engine.infer(batch), runtime.infer(batch), rtol=1e-4, atol=1e-4)

    def test_stream_options_give_each_worker_a_stream_of_one_model(self, bundle):
        from edgevision.runtimes import stream_options

        options = stream_options("openvino", 2, workers=2)
        assert options.streams == 2 and options.performance_hint is PerformanceHint.THROUGHPUT and options.threads == 2
        with load_runtime(bundle, "openvino", options=options) as engine:
            assert engine._compiled.get_property("NUM_STREAMS") == 2
            fork = engine.fork()
            assert fork._compiled is engine._compiled and fork._request is not engine._request
            fork.close()
            assert engine.infer(_images(engine)).shape[0] == 4  # the original still runs
        with pytest.raises(errors.ConfigError, match="streams"):
            OpenVINOOptions(streams=0)

    @pytest.mark.parametrize(("option", "value", "choices"), [
        ("precision_hint", "fp64", "f32, f16, bf16"),
        ("performance_hint", "fastest", "LATENCY, THROUGHPUT"),
    ])
    def test_bad_hint_value_names_the_choices(self, option, value, choices):
        with pytest.raises(errors.ConfigError, match=f"{option} '{value}'.*Choose from: {choices}"):
            OpenVINOOptions(**{option: value})

    def test_near_miss_hint_is_suggested(self):
        with pytest.raises(errors.ConfigError, match="Did you mean 'f32'"):
            OpenVINOOptions(precision_hint="fp32")

    def test_unknown_device_is_a_config_error(self, bundle):
        with pytest.raises(errors.ConfigError, match="device 'TPU' is not available here"):
            load_runtime(bundle, "openvino", options=OpenVINOOptions(device="TPU"))

    def test_wrong_options_class_is_rejected(self, bundle):
        from edgevision.runtimes import RuntimeOptions

        with pytest.raises(errors.ConfigError, match="OpenVINOOptions"):
            OpenVINORuntime(bundle, RuntimeOptions())

    @pytest.mark.parametrize("name", ["model.xml", "model.bin"])
    def test_damaged_ir_file_is_a_model_file_error(self, bundle, tmp_path, name):
        """Bypass the manifest's size check so the engine itself meets the damaged file."""
        broken = tmp_path / "broken"
        shutil.copytree(bundle.path, broken)
        path = broken / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        unchecked = Bundle(broken, bundle.manifest.model_copy(update={"file_bytes": {}}))
        with pytest.raises(errors.ModelFileError, match="re-export"):
            OpenVINORuntime(unchecked)


class TestOpenVINOFP16(RuntimeContract):
    runtime_name = "openvino"
    format = "openvino"
    precision = "fp16"

    @pytest.fixture(scope="class")
    def bundle(self, fp16_bundle):
        return fp16_bundle

    def test_cpu_runs_fp16_weights_in_f32_unless_asked(self, runtime, bundle):
        assert runtime.engine_precision == "fp32"
        assert bundle.manifest.parity.engine_precision == "fp32"

    def test_explicit_f32_hint_is_honoured(self, bundle):
        with load_runtime(bundle, "openvino", options=OpenVINOOptions(precision_hint="f32")) as engine:
            assert engine.engine_precision == "fp32"


HAS_BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no bf16 (avx512_bf16 or amx_bf16)")
class TestOpenVINOBF16(RuntimeContract):
    runtime_name = "openvino"
    format = "openvino"
    precision = "bf16"

    def test_bundle_computes_in_bf16_with_fp16_weights_and_fp16_tolerance(self, runtime, bundle, fp32_bundle):
        from edgevision.export.parity import RELATIVE_TOLERANCE
        from edgevision.types import Precision

        assert runtime.engine_precision == "bf16" and runtime.requested_precision is InferencePrecision.BF16
        assert bundle.manifest.parity.engine_precision == "bf16" and bundle.manifest.parity.passed
        assert RELATIVE_TOLERANCE[Precision.BF16] == RELATIVE_TOLERANCE[Precision.FP16]
        assert bundle.manifest.file_bytes["model.bin"] < 0.55 * fp32_bundle.manifest.file_bytes["model.bin"]


def test_bf16_is_refused_on_a_cpu_without_it_naming_the_flag():
    from edgevision.runtimes.openvino import check_bf16

    with pytest.raises(errors.ConfigError, match="avx512_bf16 or amx_bf16.*Use an fp16 or fp32 bundle"):
        check_bf16(("FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"), "CPU")
    check_bf16(("FP32", "BF16"), "CPU")
    check_bf16(("FP32",), "GPU")  # other devices report their own precisions


def test_fp16_weights_file_is_about_half_the_fp32_one(fp32_bundle, fp16_bundle):
    fp32 = fp32_bundle.manifest.file_bytes["model.bin"]
    fp16 = fp16_bundle.manifest.file_bytes["model.bin"]
    assert 0.45 <= fp16 / fp32 <= 0.55, (fp16, fp32)
    assert fp16_bundle.size_bytes < 0.55 * fp32_bundle.size_bytes


def test_onnx_file_converts_to_a_bundle_that_passes_parity(onnx_bundle, trained_model, digits, tmp_path):
    from edgevision.export import ParityConfig, write_bundle
    from edgevision.export.openvino import convert_onnx_to_openvino
    from edgevision.export.parity import check_parity
    from edgevision.types import Format, Precision

    artifact = convert_onnx_to_openvino(onnx_bundle.model_path, tmp_path, precision=Precision.FP32)
    assert (artifact.input_name, artifact.output_name, artifact.dynamic_batch) == ("input", "logits", True)
    assert all((tmp_path / name).is_file() for name in artifact.model_files)
    bundle = write_bundle(tmp_path, trained_model, artifact, Format.OPENVINO, Precision.FP32)
    report = check_parity(trained_model.module, Bundle.load(tmp_path), ParityConfig(data=digits.val))
    assert report.passed and report.engine_precision == "fp32", report
    assert report.top1_agreement >= 0.995
    assert bundle.manifest.input.shape[0] == -1


def test_missing_onnx_file_is_a_model_file_error(tmp_path):
    from edgevision.export.openvino import convert_onnx_to_openvino
    from edgevision.types import Precision

    with pytest.raises(errors.ModelFileError, match="does not exist"):
        convert_onnx_to_openvino(tmp_path / "nope.onnx", tmp_path, precision=Precision.FP32)


class TestOpenVINODetectFP32(DetectRuntimeContract):
    runtime_name = "openvino"
    format = "openvino"


class TestOpenVINODetectFP16(DetectRuntimeContract):
    runtime_name = "openvino"
    format = "openvino"
    precision = "fp16"


class TestOpenVINOSegmentFP32(SegmentRuntimeContract):
    runtime_name = "openvino"
    format = "openvino"


class TestOpenVINOSegmentFP16(SegmentRuntimeContract):
    runtime_name = "openvino"
    format = "openvino"
    precision = "fp16"
