"""`edgevision devices`: the detected profile with its reasons, settings and runtimes; clear errors."""

from __future__ import annotations

import platform

import pytest
from typer.testing import CliRunner

from edgevision.cli import app
from edgevision.devices import detect, profile_names
from edgevision.errors import DeviceError

runner = CliRunner()


@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"}, reason="checks an x86-64 host")
def test_devices_names_this_x86_machine_and_its_reasons():
    result = runner.invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    detected = detect().profile
    assert f"Detected: {detected.name}" in result.output and detected.name.startswith("x86_64")
    assert "machine is x86_64" in result.output
    assert "precisions worth using" in result.output
    assert "onnxruntime" in result.output and "usable" in result.output
    assert "pip install 'edgevision[tensorrt]'" in result.output  # not installable here


def test_devices_shows_a_named_profile():
    result = runner.invoke(app, ["devices", "--device", "jetson_orin_nano"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Profile: jetson_orin_nano" in result.output
    assert "tensorrt, onnxruntime, tflite" in result.output


def test_devices_list_shows_every_profile():
    result = runner.invoke(app, ["devices", "--list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert all(name in result.output for name in profile_names())


def test_devices_errors_are_device_errors(tmp_path):
    result = runner.invoke(app, ["devices", "--device", "raspbery_pi_5"])
    assert isinstance(result.exception, DeviceError) and "Did you mean 'raspberry_pi_5'" in str(result.exception)
    broken = tmp_path / "board.yaml"
    broken.write_text("name: board\ntitle: B\nruntimes: [onnxruntime]\nprecision: [fp32]\n")
    result = runner.invoke(app, ["devices", "--device", str(broken)])
    assert isinstance(result.exception, DeviceError)
    assert str(broken) in str(result.exception) and "unknown key 'precision'" in str(result.exception)


def test_devices_reports_which_opencv_is_in_use():
    cv2 = pytest.importorskip("cv2")
    result = runner.invoke(app, ["devices"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("OpenCV:"))
    assert cv2.__version__ in line and "GStreamer " in line
    assert "(pip opencv" in line or "(system)" in line
