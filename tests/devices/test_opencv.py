"""Which cv2 is in use: pip wheel or system, GStreamer or not, and a clear error when there is none."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from edgevision._optional import opencv
from edgevision.devices import opencv_info
from edgevision.devices.opencv import gstreamer_enabled
from edgevision.errors import EngineNotInstalledError

JETPACK_BUILD_INFO = """
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)
"""


def fake_system_cv2(root: Path, *, gstreamer: str) -> object:
    """A cv2 package outside any pip distribution, like apt's python3-opencv, imported under another name."""
    package = root / "cv2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"__version__ = '4.6.0'\ndef getBuildInformation():\n    return '  Video I/O:\\n    GStreamer: {gstreamer}\\n'\n"
    )
    spec = importlib.util.spec_from_file_location("fake_system_cv2", package / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gstreamer_line_is_read_from_the_build_information():
    assert gstreamer_enabled(JETPACK_BUILD_INFO) is True
    assert gstreamer_enabled(JETPACK_BUILD_INFO.replace("YES (1.20.3)", "NO")) is False
    assert gstreamer_enabled("  Video I/O:\n    FFMPEG: YES\n") is None


def test_a_cv2_no_pip_distribution_owns_is_the_system_one(tmp_path):
    module = fake_system_cv2(tmp_path / "dist-packages", gstreamer="YES (1.22.0)")
    info = opencv_info(module=module, search_path=[str(tmp_path / "dist-packages")])
    assert info.installed and info.source == "system" and info.version == "4.6.0"
    assert info.gstreamer is True and info.shadows == ""
    assert "(system)" in info.describe() and "GStreamer yes" in info.describe()


def test_the_pip_wheel_is_named_and_a_system_cv2_it_hides_is_reported(tmp_path):
    cv2 = pytest.importorskip("cv2")
    system = tmp_path / "dist-packages"
    fake_system_cv2(system, gstreamer="YES")
    site = str(Path(cv2.__file__).resolve().parent.parent)
    info = opencv_info(module=cv2, search_path=[site, str(system)])
    if info.source == "system":
        pytest.skip("this environment's cv2 is itself a system OpenCV")
    assert info.source.startswith("pip opencv") and info.version == cv2.__version__
    assert info.shadows == str((system / "cv2").resolve())
    assert "hides the cv2" in info.describe()
    assert opencv_info(module=cv2, search_path=[site]).shadows == ""


def test_a_one_file_system_cv2_is_found_and_reported_as_hidden(tmp_path):
    cv2 = pytest.importorskip("cv2")
    system = tmp_path / "dist-packages"
    system.mkdir()
    (system / "cv2.py").write_text("__version__ = '4.6.0'\n")  # Debian's python3-opencv is one cv2.*.so file
    site = str(Path(cv2.__file__).resolve().parent.parent)
    info = opencv_info(module=cv2, search_path=[site, str(system)])
    if info.source == "system":
        pytest.skip("this environment's cv2 is itself a system OpenCV")
    assert info.shadows == str((system / "cv2.py").resolve())


def test_no_cv2_at_all_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # makes `import cv2` fail as if nothing were installed
    with pytest.raises(EngineNotInstalledError, match=r"edgevision\[opencv\].*python3-opencv"):
        opencv()
    info = opencv_info()
    assert not info.installed and "edgevision[opencv]" in info.describe()


def test_importing_the_device_code_without_cv2_names_the_fix():
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "from edgevision.errors import EngineNotInstalledError\n"
        "try:\n    import edgevision.preprocess\nexcept EngineNotInstalledError as exc:\n    print('CLEAR:', exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "CLEAR: OpenCV (cv2) is not installed: pip install 'edgevision[opencv]'" in result.stdout
