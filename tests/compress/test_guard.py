"""The accuracy guard: an over-budget compressed model raises, says why, and leaves nothing on disk."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.guard import AccuracyReport, check_accuracy, check_max_drop
from edgevision.compress.quantize import quantize
from edgevision.errors import AccuracyBudgetError, ConfigError


@pytest.fixture
def black_images(tmp_path: Path) -> Path:
    """A calibration folder of all-black images: nothing like the digits the model will see."""
    folder = tmp_path / "black" / "0"
    folder.mkdir(parents=True)
    for i in range(16):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((32, 32, 3), np.uint8))
    return folder.parent


def test_broken_calibration_trips_the_guard_and_writes_nothing(trained_model, black_images, tiny_val, tmp_path: Path) -> None:
    out = tmp_path / "bundles"
    out.mkdir()
    with pytest.warns(UserWarning, match="16 images"), pytest.raises(AccuracyBudgetError) as caught:
        quantize(
            trained_model, out / "int8", format="onnx", calibration=CalibrationConfig(data=black_images),
            validation=tiny_val, max_accuracy_drop=0.01,
        )
    message = str(caught.value)
    assert "The INT8 onnx model lost too much accuracy: top-1 " in message
    assert "budget 1.00 pt" in message and "on 80 images" in message and "through onnxruntime (int8)" in message
    assert "Nothing was written" in message and "calibration images" in message
    original, compressed = (float(x) for x in _percentages(message))
    assert original - compressed > 1.0
    assert list(out.iterdir()) == []  # neither the bundle nor its temp dir


def _percentages(message: str) -> list[str]:
    import re

    return re.findall(r"([\d.]+)%", message)[:2]


def test_a_faithful_bundle_passes_a_zero_budget(trained_model, onnx_bundle, tiny_val) -> None:
    report = check_accuracy(trained_model, onnx_bundle, validation=tiny_val, max_accuracy_drop=0.0)
    assert report.passed and report.images == 80 and report.drop == 0.0
    assert report.original > 0.85 and report.engine == "onnxruntime (fp32)"


def test_accuracy_report_validates_and_explains() -> None:
    report = AccuracyReport(original=0.98, compressed=0.95, images=100, max_drop=0.015, engine="openvino (int8)", data="val")
    assert not report.passed and report.drop == pytest.approx(0.03)
    assert report.summary().startswith("top-1 98.00% → 95.00% (drop 3.00 pt, budget 1.50 pt) on 100 images of val")
    assert report.summary().endswith("(a selection check that gated this bundle, not a held-out figure)")
    assert AccuracyReport(original=0.9, compressed=0.91, images=1, max_drop=0.0, engine="e", data="d").passed
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AccuracyReport(original=98.0, compressed=0.9, images=10, max_drop=0.01, engine="e", data="d")
    with pytest.raises(ValueError, match="at least one image"):
        AccuracyReport(original=0.9, compressed=0.9, images=0, max_drop=0.01, engine="e", data="d")


@pytest.mark.parametrize("budget", [1.5, -0.01, float("nan"), 1.0])
def test_budget_is_a_fraction(budget: float) -> None:
    with pytest.raises(ConfigError, match="fraction"):
        check_max_drop(budget)
