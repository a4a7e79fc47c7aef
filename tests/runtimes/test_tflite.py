"""TFLite: litert-torch export (NHWC, FP32/FP16, INT8) and the LiteRT interpreter runtime."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from edgevision import errors  # noqa: E402
from edgevision.runtimes import load_runtime  # noqa: E402
from edgevision.runtimes.tflite import TFLiteOptions, import_interpreter  # noqa: E402
from edgevision.types import Layout  # noqa: E402
from tests.blocking import run_blocked  # noqa: E402
from tests.runtimes.contract import RuntimeContract  # noqa: E402
from tests.runtimes.detect_contract import DetectRuntimeContract  # noqa: E402
from tests.runtimes.segment_contract import SegmentRuntimeContract  # noqa: E402


def _plain_interpreter(path):  # noqa: ANN001, ANN202 - the file as LiteRT sees it, no delegate rewriting
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    interpreter.allocate_tensors()
    return interpreter


class TestTFLiteFP32(RuntimeContract):
    runtime_name = "tflite"
    format = "tflite"

    def test_model_takes_nhwc_natively(self, bundle):
        assert bundle.manifest.input.layout is Layout.NHWC
        assert bundle.manifest.input.shape == (1, 32, 32, 3)
        interpreter = _plain_interpreter(bundle.model_path)
        assert tuple(interpreter.get_input_details()[0]["shape"]) == (1, 32, 32, 3)
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
        assert "CONV_2D" in ops and "TRANSPOSE" not in ops, ops

    def test_nchw_batch_gets_a_transpose_hint(self, runtime):
        with pytest.raises(errors.InputError, match="transpose it to NHWC"):
            runtime.infer(np.zeros((1, 3, 32, 32), dtype=np.float32))

    def test_xnnpack_on_by_default_and_can_be_switched_off(self, bundle, runtime):
        batch = self._batch(runtime, 2)
        assert runtime.xnnpack_applied
        with load_runtime(bundle, "tflite", options=TFLiteOptions(threads=1, xnnpack=False)) as plain:
            assert not plain.xnnpack_applied
            np.testing.assert_allclose(plain.infer(batch), runtime.infer(batch), rtol=1e-4, atol=1e-4)

    def test_a_graph_xnnpack_refuses_runs_on_the_builtin_kernels_with_a_warning(self, bundle, runtime, monkeypatch):
        # XNNPACK refuses some INT8 graphs when preparing them; that refusal is injected here, the fallback is real.
        from edgevision.runtimes.tflite import TFLiteRuntime, XnnpackFallbackWarning

        real_build = TFLiteRuntime._build

        def refusing(self, *, xnnpack):  # noqa: ANN001, ANN202
            if xnnpack:
                raise RuntimeError("failed to create XNNPACK runtimeNode number 87 (TfLiteXNNPackDelegate) failed to prepare.")
            return real_build(self, xnnpack=xnnpack)

        monkeypatch.setattr(TFLiteRuntime, "_build", refusing)
        batch = self._batch(runtime, 2)
        with pytest.warns(XnnpackFallbackWarning, match="Node number 87"):
            fallback = load_runtime(bundle, "tflite", options=TFLiteOptions(threads=1))
        with fallback:
            assert not fallback.xnnpack_applied and "failed to prepare" in fallback.engine_config["xnnpack_refused"]
            np.testing.assert_allclose(fallback.infer(batch), runtime.infer(batch), rtol=1e-4, atol=1e-4)
        assert runtime.engine_config["xnnpack_refused"] is None

    def test_falls_back_to_tflite_runtime(self, bundle, runtime, monkeypatch):
        # A device with only the older wheel: same Interpreter API under `tflite_runtime.interpreter`.
        import ai_edge_litert.interpreter as litert_interpreter

        batch = self._batch(runtime, 1)
        expected = runtime.infer(batch)
        package = types.ModuleType("tflite_runtime")
        package.interpreter = litert_interpreter
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime", package)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", litert_interpreter)
        with load_runtime(bundle, "tflite", threads=1) as fallback:
            np.testing.assert_allclose(fallback.infer(batch), expected, rtol=1e-5, atol=1e-5)

    def test_no_interpreter_names_the_extra(self, bundle, monkeypatch):
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
        with pytest.raises(errors.EngineNotInstalledError, match=r"pip install 'edgevision\[tflite\]'"):
            import_interpreter()
        with pytest.raises(errors.EngineNotInstalledError, match="ai-edge-litert nor tflite-runtime"):
            load_runtime(bundle, "tflite")

    def test_runs_on_a_device_without_torch(self, bundle, digits):
        result = run_blocked(
            f"""
            import sys, numpy as np, edgevision
            from edgevision.data import ImageFolder
            engine = edgevision.load_runtime({str(bundle.path)!r}, threads=1)
            images, labels = next(ImageFolder.open({str(digits.val)!r}).batches(16))
            print(float(np.mean(engine.predict(images).argmax(1) == labels)))
            assert "torch" not in sys.modules and "litert_torch" not in sys.modules
            """,
            blocked=("torch", "torchvision", "litert_torch", "ai_edge_quantizer"),
        )
        assert result.returncode == 0, result.stderr
        assert float(result.stdout.strip().splitlines()[-1]) >= 0.8


class TestTFLiteFP16(RuntimeContract):
    runtime_name = "tflite"
    format = "tflite"
    precision = "fp16"

    def test_weights_are_stored_as_fp16_with_float32_io(self, bundle, trained_model):
        weights = sum(p.numel() for p in trained_model.module.parameters())
        assert bundle.manifest.file_bytes["model.tflite"] < 2.2 * weights  # FP32 needs ≥ 4 bytes a weight
        interpreter = _plain_interpreter(bundle.model_path)
        assert interpreter.get_input_details()[0]["dtype"] == np.float32
        assert interpreter.get_output_details()[0]["dtype"] == np.float32
        assert any(t["dtype"] == np.float16 for t in interpreter.get_tensor_details())
        assert bundle.manifest.versions["ai-edge-quantizer"]


def test_unsupported_operator_is_named(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("litert_torch")
    from edgevision.bundle import PreprocessSpec
    from edgevision.export import export
    from edgevision.model import TrainedModel

    class ErfinvHead(torch.nn.Module):  # erfinv has no TFLite lowering
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.fc(torch.special.erfinv(torch.tanh(self.conv(x))).mean((2, 3)))

    model = TrainedModel(ErfinvHead(), labels=["a", "b"], preprocess=PreprocessSpec(size=(8, 8)))
    with pytest.raises(errors.ExportError, match=r"operator\(s\) aten\.erfinv\.default"):
        export(model, tmp_path / "bundle", format="tflite")
    assert not (tmp_path / "bundle").exists()


@pytest.mark.slow
def test_int8_full_integer_bundle_agrees_with_torch(trained_model, digits, tmp_path):
    pytest.importorskip("litert_torch")
    from edgevision.bundle import InputSpec
    from edgevision.data.folder import ImageFolder
    from edgevision.export import ParityConfig, write_bundle
    from edgevision.export.parity import check_parity
    from edgevision.export.tflite import quantize_tflite_int8
    from edgevision.preprocess import preprocess_batch
    from edgevision.types import Format, Precision

    nchw = InputSpec(name="input", shape=(1, 3, *trained_model.input_size))
    calibration = ImageFolder.open(digits.train, labels=trained_model.labels).subset(100, seed=1)
    batches = (preprocess_batch(images, trained_model.preprocess, nchw) for images, _ in calibration.batches(32))
    artifact = quantize_tflite_int8(trained_model, tmp_path, batches)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]
    interpreter = _plain_interpreter(tmp_path / "model.tflite")
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not ops & {"QUANTIZE", "DEQUANTIZE"}, ops  # integer end to end

    bundle = write_bundle(tmp_path, trained_model, artifact, Format.TFLITE, Precision.INT8)
    report = check_parity(trained_model.module, bundle, ParityConfig(data=digits.val))
    assert report.passed and report.top1_agreement >= 0.99, report
    assert report.engine_precision == "int8"
    assert bundle.manifest.file_bytes["model.tflite"] < 1.2 * sum(p.numel() for p in trained_model.module.parameters())


def test_int8_needs_nchw_calibration_batches(trained_model, tmp_path):
    pytest.importorskip("litert_torch")
    from edgevision.export.tflite import quantize_tflite_int8

    with pytest.raises(errors.ConfigError, match="NCHW"):
        quantize_tflite_int8(trained_model, tmp_path, [np.zeros((2, 32, 32, 3), dtype=np.float32)])
    assert list(tmp_path.iterdir()) == []


class TestTFLiteDetectFP32(DetectRuntimeContract):
    runtime_name = "tflite"
    format = "tflite"


class TestTFLiteSegmentFP32(SegmentRuntimeContract):
    runtime_name = "tflite"
    format = "tflite"


class TestTFLiteSegmentFP16(SegmentRuntimeContract):
    runtime_name = "tflite"
    format = "tflite"
    precision = "fp16"
