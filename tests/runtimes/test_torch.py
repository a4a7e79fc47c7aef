import pytest

pytest.importorskip("torch")

from tests.runtimes.contract import RuntimeContract  # noqa: E402
from tests.runtimes.detect_contract import DetectRuntimeContract  # noqa: E402


class TestTorchReference(RuntimeContract):
    runtime_name = "torch"
    format = "torch"


class TestTorchReferenceDetect(DetectRuntimeContract):
    runtime_name = "torch"
    format = "torch"
