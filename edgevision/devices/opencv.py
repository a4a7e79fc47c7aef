"""Which OpenCV this Python uses: the pip wheel or the system's, and whether it can read GStreamer pipelines.

A board's own OpenCV (JetPack's, built with GStreamer for the CSI camera and the hardware decoder; Pi OS's
apt python3-opencv) lives in the system site-packages. A pip wheel in a venv made with
--system-site-packages comes first on sys.path and silently shadows it; this module says so.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The pip distributions that ship a `cv2` package.
PIP_DISTRIBUTIONS = ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python")


@dataclass(frozen=True)
class OpenCVInfo:
    """`source` is "pip NAME==VERSION" or "system"; `gstreamer` is None when the build information is unreadable."""

    installed: bool
    version: str = ""
    path: str = ""
    source: str = ""
    gstreamer: bool | None = None
    shadows: str = ""  # another cv2 further down sys.path that this one hides (e.g. the system's)
    problem: str = ""

    def describe(self) -> str:
        """One line for `edgevision devices` and the device checks."""
        if not self.installed:
            return f"OpenCV: none ({self.problem})"
        gst = {True: "yes", False: "no", None: "unknown"}[self.gstreamer]
        text = f"OpenCV {self.version} ({self.source}) at {self.path}, GStreamer {gst}"
        if self.shadows:
            text += f"; it hides the cv2 at {self.shadows}"
        return text


def opencv_info(*, module: Any = None, search_path: list[str] | None = None) -> OpenCVInfo:
    """Import cv2 (or describe `module`) and say where it comes from.

    `search_path` defaults to sys.path; tests pass their own to place a fake system cv2.
    """
    if module is None:
        try:
            import cv2 as module
        except ImportError as exc:  # missing, or a wheel built against another numpy
            return OpenCVInfo(installed=False, problem=_import_problem(exc))
    location = _location(Path(module.__file__))
    return OpenCVInfo(
        installed=True,
        version=str(getattr(module, "__version__", "?")),
        path=str(location),
        source=_source(location),
        gstreamer=gstreamer_enabled(_build_information(module)),
        shadows=_shadowed(location, sys.path if search_path is None else search_path),
    )


def _location(origin: Path) -> Path:
    """The cv2 package folder, or the file itself for a one-file build (Debian's python3-opencv is cv2.*.so)."""
    origin = origin.resolve()
    return origin.parent if origin.stem == "__init__" else origin


def gstreamer_enabled(build_information: str) -> bool | None:
    """True/False from the 'GStreamer: YES (1.20.3)' / 'NO' line of cv2.getBuildInformation(); None if absent."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", build_information, flags=re.MULTILINE)
    if match is None:
        return None
    return match.group(1).upper().startswith("YES")


def _build_information(module: Any) -> str:
    try:
        return str(module.getBuildInformation())
    except Exception:  # noqa: BLE001 - a stripped build: report "unknown" rather than fail
        return ""


def _source(package_dir: Path) -> str:
    """'pip opencv-python-headless==4.11.0.86' when a pip distribution owns this cv2 folder, else 'system'."""
    for name in PIP_DISTRIBUTIONS:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if Path(str(dist.locate_file("cv2"))).resolve() == package_dir:
            return f"pip {name}=={dist.version}"
    return "system"


def _shadowed(location: Path, search_path: list[str]) -> str:
    """The first other cv2 on `search_path` (one the imported cv2 hides), or ''."""
    for entry in search_path:
        spec = importlib.machinery.PathFinder.find_spec("cv2", [entry or "."])
        if spec is None or spec.origin is None:
            continue
        other = _location(Path(spec.origin))
        if other != location:
            return str(other)
    return ""


def _import_problem(exc: ImportError) -> str:
    if getattr(exc, "name", None) == "cv2":
        return ("not installed: pip install 'edgevision[opencv]', or apt install python3-opencv and make the venv "
                "with --system-site-packages")
    return f"cv2 is there but fails to import: {exc}"
