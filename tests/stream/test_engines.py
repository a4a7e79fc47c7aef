"""The stream through OpenVINO and TFLite bundles gives the same predictions as offline inference.

Each engine skips with a reason when its package or its exporter is not available here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgevision.runtimes import load_runtime
from edgevision.stream import CallbackSink, FrameResult, run_stream
from tests.stream.videos import FRAMES, decode_all

ENGINES = {  # format → (engine package, runtime name)
    "openvino": ("openvino", "openvino"),
    "tflite": ("ai_edge_litert", "tflite"),
}


# OpenVINO exports in seconds; the TFLite exporter loads litert-torch (~20 s), so it only runs with slow tests.
@pytest.fixture(scope="module", params=["openvino", pytest.param("tflite", marks=pytest.mark.slow)])
def engine_bundle(request, trained_model, digits, tmp_path_factory):
    fmt = request.param
    package, runtime_name = ENGINES[fmt]
    pytest.importorskip(package, reason=f"{package} is not installed")
    from edgevision.export import ParityConfig, export

    try:
        bundle = export(trained_model, tmp_path_factory.mktemp(fmt) / "bundle", format=fmt,
                        parity=ParityConfig(data=digits.val))
    except (ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"{fmt} export is not available here: {exc}")
    return bundle, runtime_name


def test_stream_equals_offline_predictions(engine_bundle, digit_video):
    bundle, runtime_name = engine_bundle
    with load_runtime(bundle, runtime_name, threads=1) as runtime:
        results: list[FrameResult] = []
        summary = run_stream(runtime, str(digit_video), sinks=[CallbackSink(results.append)])
        offline = runtime.predict(decode_all(digit_video))
    assert summary.frames == FRAMES and [r.index for r in results] == list(range(FRAMES))
    labels = bundle.manifest.labels
    assert [r.payload.top1.label for r in results] == [labels[i] for i in offline.argmax(axis=1)]
    probs = np.exp(offline - offline.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    np.testing.assert_allclose([r.payload.top1.score for r in results], probs.max(axis=1), rtol=1e-4, atol=1e-6)


def test_device_example_runs_the_engine_bundle(engine_bundle, digit_video):
    bundle, runtime_name = engine_bundle
    example = {"openvino": "x86_webcam", "tflite": "raspberry_pi_camera"}[bundle.manifest.format.value]
    script = Path(__file__).resolve().parents[2] / "examples" / f"{example}.py"
    done = subprocess.run([sys.executable, str(script), "--bundle", str(bundle.path), "--source", str(digit_video),
                           "--max-frames", "20"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"20 frames via {runtime_name}" in done.stdout
