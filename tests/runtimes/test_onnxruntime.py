import os

import pytest

pytest.importorskip("onnxruntime")

from tests.runtimes.contract import RuntimeContract  # noqa: E402
from tests.runtimes.detect_contract import DetectRuntimeContract  # noqa: E402
from tests.runtimes.segment_contract import SegmentRuntimeContract  # noqa: E402


class TestONNXRuntimeFP32(RuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"


class TestONNXRuntimeFP16(RuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"
    precision = "fp16"


def test_spinning_can_be_turned_off_and_either_setting_gives_the_same_numbers(onnx_bundle):
    """Spinning off is for streams (capture shares the cores); it changes timing, never results."""
    import numpy as np

    from edgevision.runtimes import load_runtime
    from edgevision.runtimes.onnxruntime import ONNXRuntimeOptions

    assert ONNXRuntimeOptions().allow_spinning is True  # ONNX Runtime's own default
    with load_runtime(onnx_bundle, options=ONNXRuntimeOptions(threads=2, allow_spinning=False)) as quiet, \
            load_runtime(onnx_bundle, threads=2) as spinning:
        session_options = quiet._session.get_session_options()  # the engine's own record of the setting
        assert session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        batch = np.random.default_rng(0).standard_normal((2, *quiet.input_spec.shape[1:])).astype(np.float32)
        np.testing.assert_allclose(quiet.infer(batch), spinning.infer(batch), rtol=1e-5, atol=1e-5)


def test_stream_options_turn_spinning_off_only_where_an_engine_has_it():
    from edgevision.runtimes import stream_options
    from edgevision.runtimes.onnxruntime import ONNXRuntimeOptions

    options = stream_options("onnxruntime", 2)
    assert isinstance(options, ONNXRuntimeOptions) and options.allow_spinning is False and options.threads == 2
    assert stream_options("torch", 1).threads == 1  # no spinning switch: the engine's own options, threads set


def test_stream_options_split_the_threads_between_workers():
    from edgevision.errors import ConfigError
    from edgevision.runtimes import stream_options

    assert stream_options("onnxruntime", 4, workers=2).threads == 2  # one session per worker
    assert stream_options("onnxruntime", 1, workers=3).threads == 1
    assert stream_options("onnxruntime", None, workers=2).threads == max(1, (os.cpu_count() or 2) // 2)
    with pytest.raises(ConfigError, match="workers"):
        stream_options("onnxruntime", 2, workers=0)


class TestONNXRuntimeDetectFP32(DetectRuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"


class TestONNXRuntimeDetectFP16(DetectRuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"
    precision = "fp16"


class TestONNXRuntimeSegmentFP32(SegmentRuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"


class TestONNXRuntimeSegmentFP16(SegmentRuntimeContract):
    runtime_name = "onnxruntime"
    format = "onnx"
    precision = "fp16"
