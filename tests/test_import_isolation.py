"""A device has numpy, OpenCV and one engine: importing edgevision must not need torch."""

from __future__ import annotations

import subprocess
import sys

from tests.blocking import run_blocked

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "nncf", "torch_pruning", "ai_edge_litert",
         "litert_torch", "tensorrt", "sklearn", "matplotlib", "jax", "tensorflow")


def test_import_edgevision_runtimes_loads_no_torch_or_engine():
    code = (
        "import sys, edgevision, edgevision.runtimes, edgevision.preprocess, edgevision.cli;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_onnx_bundle_runs_with_torch_blocked(onnx_bundle, digits):
    result = run_blocked(
        f"""
        import numpy as np, edgevision
        from edgevision.data import ImageFolder
        rt = edgevision.load_runtime({str(onnx_bundle.path)!r}, threads=1)
        folder = ImageFolder.open({str(digits.val)!r})
        images, labels = next(folder.batches(32))
        print(float(np.mean(rt.predict(images).argmax(1) == labels)))
        import sys; assert "torch" not in sys.modules
        """,
        blocked=("torch", "torchvision"),
    )
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.strip()) >= 0.85


def test_missing_engine_names_the_extra(onnx_bundle):
    result = run_blocked(
        f"""
        import edgevision
        from edgevision.errors import EngineNotInstalledError
        try:
            edgevision.load_runtime({str(onnx_bundle.path)!r})
        except EngineNotInstalledError as exc:
            print(exc)
        """,
        blocked=("onnxruntime",),
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'edgevision[onnx]'" in result.stdout


def test_cli_error_is_one_line_without_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgevision.cli", "info", str(tmp_path / "missing")], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "does not exist" in out.stderr and len(out.stderr.strip().splitlines()) == 1
