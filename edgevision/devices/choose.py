"""From a device profile to a runtime: the first preferred engine that is installed and runs the bundle.

Never installs anything and never substitutes a runtime the profile does not list: when none
fits, the error says which are missing and how to get one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import DeviceError
from ..types import Format
from .profile import DeviceProfile

#: The pip extra that brings each built-in runtime's engine.
RUNTIME_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino", "tflite": "tflite", "tensorrt": "tensorrt", "torch": "compress"}


@dataclass(frozen=True)
class RuntimeSupport:
    """Whether one runtime can be used here, and for which bundle formats."""

    name: str
    installed: bool
    formats: frozenset[Format]
    problem: str = ""  # why it cannot be used ("" when it can)

    @property
    def usable(self) -> bool:
        return self.installed and not self.problem


def runtime_support(names: list[str] | tuple[str, ...] | None = None, *, installed: Mapping[str, bool] | None = None) -> list[RuntimeSupport]:
    """Support for `names` (default: every registered runtime), in that order.

    Imports each runtime's edgevision module (to read its `formats`), never its engine.
    """
    from ..runtimes import RUNTIMES, available_runtimes

    installed = dict(available_runtimes() if installed is None else installed)
    result = []
    for name in names if names is not None else RUNTIMES.names():
        is_installed = bool(installed.get(name, False))
        try:
            formats = frozenset(RUNTIMES.get(name).formats)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not hide the others
            result.append(RuntimeSupport(name, is_installed, frozenset(), f"its edgevision module failed to load: {exc}"))
            continue
        problem = "" if is_installed else f"not installed: pip install 'edgevision[{RUNTIME_EXTRAS.get(name, name)}]'"
        result.append(RuntimeSupport(name, is_installed, formats, problem))
    return result


def choose_runtime(
    profile: DeviceProfile,
    bundle_format: Format | str,
    installed: Mapping[str, bool] | None = None,
) -> str:
    """The first runtime in `profile.runtimes` that is installed and runs `bundle_format`.

    `installed` maps runtime names to availability (default: `available_runtimes()`).
    Raises DeviceError naming each preferred runtime and why it was passed over.
    """
    try:
        fmt = Format(bundle_format)
    except ValueError:
        raise DeviceError(f"Unknown bundle format {bundle_format!r}; expected one of {', '.join(f.value for f in Format)}.") from None
    passed_over = []
    for support in runtime_support(profile.runtimes, installed=installed):
        if support.usable and fmt in support.formats:
            return support.name
        why = support.problem or f"runs {', '.join(sorted(f.value for f in support.formats))}, not {fmt.value}"
        passed_over.append(f"{support.name} ({why})")
    suitable = sorted(
        s.name for s in runtime_support(installed=installed) if s.usable and fmt in s.formats and s.name not in profile.runtimes
    )
    hint = f" Installed runtimes outside the profile that could run it: {', '.join(suitable)} (name one with --runtime)." if suitable else ""
    raise DeviceError(
        f"No runtime in the {profile.name} profile can run {fmt.value} bundles here: {'; '.join(passed_over)}. "
        f"Install one, or export the bundle to a format the profile's runtimes read.{hint}"
    )


def resolve_device(name: str) -> tuple[DeviceProfile, list[str]]:
    """A profile and why it was chosen: ``"auto"`` detects this machine, anything else is a profile name or YAML path."""
    from .detect import detect
    from .profile import load_profile

    if name == "auto":
        detection = detect()
        return detection.profile, detection.reasons
    return load_profile(name), [f"named explicitly ({name})"]
