"""The one place optional engines are imported, so a missing one becomes a clear error."""

from __future__ import annotations

import importlib
import platform
import sys
from types import ModuleType

from .errors import EngineNotInstalledError

#: Extras of the workstation side (training, compression, export): tested on Python 3.11+ only.
WORKSTATION_EXTRAS = frozenset({"compress", "tflite-export"})
#: The oldest Python the workstation side supports; the device side (runtimes, stream, bench, devices) runs on 3.10.
WORKSTATION_PYTHON = (3, 11)


def require(module: str, *, extra: str, what: str | None = None, alternative: str = "") -> ModuleType:
    """Import `module` or raise EngineNotInstalledError naming the pip extra to install.

    Never installs anything: a device's environment is the user's to control. `alternative` is a
    second way to get it (e.g. the system's package), added to the message. A workstation extra on
    an older Python (a Jetson's 3.10) is refused by name instead of failing somewhere inside torch.
    """
    if extra in WORKSTATION_EXTRAS and sys.version_info[:2] < WORKSTATION_PYTHON:
        wanted = ".".join(map(str, WORKSTATION_PYTHON))
        raise EngineNotInstalledError(
            f"{what or module} belongs to edgevision's workstation side (training, compression, export), which needs "
            f"Python {wanted} or newer; this is Python {platform.python_version()}. The device side (runtimes, stream, "
            f"bench, devices) runs here: make bundles on a Python {wanted}+ machine and copy them to this one."
        )
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if not _is_missing(exc, module):
            raise
        label = what or module
        raise EngineNotInstalledError(
            f"{label} is not installed: pip install 'edgevision[{extra}]'{alternative}"
        ) from exc


def opencv() -> ModuleType:
    """cv2, from wherever this Python finds it: the pip wheel or the system's (JetPack's, with GStreamer).

    OpenCV is an extra, not a core dependency, so a pip wheel never shadows a board's system OpenCV.
    """
    return require(
        "cv2", extra="opencv", what="OpenCV (cv2)",
        alternative=" or use the system's OpenCV (apt install python3-opencv; JetPack has it) from a venv made "
        "with --system-site-packages",
    )


def _is_missing(exc: ImportError, module: str) -> bool:
    missing = getattr(exc, "name", None)
    return missing is None or module == missing or module.startswith(f"{missing}.")


def is_installed(module: str) -> bool:
    """True when `module` can be found, without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
