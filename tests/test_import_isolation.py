"""A device has numpy, OpenCV and one engine: importing edgevision must not need torch."""

from __future__ import annotations

import subprocess
import sys

from tests.blocking import run_blocked

HEAVY = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "nncf", "torch_pruning", "ai_edge_litert",
         "litert_torch", "tensorrt", "sklearn", "matplotlib", "jax", "tensorflow")


def test_import_edgevision_runtimes_loads_no_torch_or_engine():
    code = (
        "import sys, edgevision, edgevision.runtimes, edgevision.preprocess, edgevision.cli, edgevision.tasks.segment,"
        " edgevision.metrics.segmentation, edgevision.data.masks, edgevision.bench.task_metrics;"
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


def test_exported_segment_bundle_segments_with_torch_blocked(tmp_path):
    """A device with numpy, OpenCV and ONNX Runtime: masks in each frame's pixels, and torch never imported."""
    import numpy as np

    from edgevision.export import export
    from tests.runtimes.block_segmenter import block_segmenter_model
    from tests.tasks.segment_bundle import expected_mask, painted_frame

    bundle = export(block_segmenter_model(), tmp_path / "segment", format="onnx")
    np.save(tmp_path / "frame.npy", painted_frame(2))
    result = run_blocked(
        f"""
        import sys, numpy as np, edgevision
        with edgevision.load_runtime({str(bundle.path)!r}, threads=1) as engine:
            (mask,) = engine.segment([np.load({str(tmp_path / "frame.npy")!r})])
        np.save({str(tmp_path / "mask.npy")!r}, mask.class_ids)
        print(mask.area_fractions())
        assert "torch" not in sys.modules and "torchvision" not in sys.modules
        """,
        blocked=("torch", "torchvision"),
    )
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(tmp_path / "mask.npy"), expected_mask(2))
    assert result.stdout.strip() == "{'red': 0.125, 'blue': 0.125}"


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
