import pytest

pytest.importorskip("onnxruntime")

from tests.runtimes.contract import RuntimeContract  # noqa: E402


class TestONNXRuntimeFP32(RuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"


class TestONNXRuntimeFP16(RuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"
    precision = "fp16"
