"""Runtime registry: lazy names, did-you-mean, duplicates refused, third-party entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from edgevision import errors
from edgevision.registry import Registry
from edgevision.runtimes import RUNTIMES, load_runtime


def test_builtin_runtimes_registered():
    assert {"onnxruntime", "openvino", "tflite", "tensorrt", "torch"} <= set(RUNTIMES.names())


def test_unknown_runtime_suggests_near_miss(onnx_bundle):
    with pytest.raises(errors.UnknownNameError) as info:
        load_runtime(onnx_bundle, "onnxrutime")
    message = str(info.value)
    assert "Unknown runtime 'onnxrutime'" in message and "Did you mean 'onnxruntime'?" in message
    assert "openvino" in message  # lists what is available


def test_runtime_for_other_format_is_refused(onnx_bundle):
    with pytest.raises(errors.ConfigError, match="cannot run a onnx bundle"):
        load_runtime(onnx_bundle, "torch")


def test_duplicate_registration_refused():
    registry: Registry = Registry("thing")
    registry.register("a", "json:dumps")
    registry.register("a", "json:dumps")  # same target is fine
    with pytest.raises(errors.ConfigError, match="already registered"):
        registry.register("a", "json:loads")


def test_third_party_runtime_via_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "my_engine-1.0.dist-info").mkdir(parents=True)
    (site / "my_engine-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-engine\nVersion: 1.0\n")
    (site / "my_engine-1.0.dist-info" / "entry_points.txt").write_text(
        "[edgevision.runtimes]\nmyengine = my_engine:MyRuntime\n"
    )
    (site / "my_engine.py").write_text(textwrap.dedent("""
        from edgevision.runtimes.onnxruntime import ONNXRuntime
        class MyRuntime(ONNXRuntime):
            name = "myengine"
    """))
    code = "from edgevision.runtimes import RUNTIMES; print('myengine' in RUNTIMES.names(), RUNTIMES.get('myengine').name)"
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["True", "myengine"], out.stderr


def test_every_error_is_an_edgevision_error():
    leaves = [errors.ManifestError, errors.ModelFileError, errors.InputError, errors.DataError, errors.UnknownNameError,
              errors.EngineNotInstalledError, errors.ParityError, errors.AccuracyBudgetError, errors.StreamError]
    assert all(issubclass(e, errors.EdgeVisionError) for e in leaves)
