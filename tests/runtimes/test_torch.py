import pytest

pytest.importorskip("torch")

from tests.runtimes.contract import RuntimeContract  # noqa: E402
from tests.runtimes.detect_contract import DetectRuntimeContract  # noqa: E402
from tests.runtimes.segment_contract import SegmentRuntimeContract  # noqa: E402


class TestTorchReference(RuntimeContract):
    runtime_name = "torch"
    format = "torch"


class TestTorchReferenceDetect(DetectRuntimeContract):
    runtime_name = "torch"
    format = "torch"


class TestTorchReferenceSegment(SegmentRuntimeContract):
    runtime_name = "torch"
    format = "torch"

    def test_segments_in_a_process_that_never_imports_torch(self):
        pytest.skip("the torch runtime is the workstation's reference: it needs torch by definition")
