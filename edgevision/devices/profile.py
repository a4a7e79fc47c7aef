"""Device profiles: what runs best on a board, as small YAML files validated on load.

A profile names the runtimes to try in order, the precisions worth exporting, the thread count,
and the rules `detect()` uses to recognise the board. The bundled profiles live in
``edgevision/devices/profiles/``; a user's own profile is any YAML file with the same keys.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import DeviceError, did_you_mean
from ..types import Precision

PROFILE_SUFFIXES = (".yaml", ".yml")


class MatchRules(BaseModel):
    """How `detect()` recognises the board. Empty lists are not checked.

    The board is identified by `device_tree_model` or `tegra_release` (any listed substring of
    /proc/device-tree/model or /etc/nv_tegra_release); `machine`, `cpu_flags_all` and
    `cpu_flags_any` are conditions that must also hold. A profile with no identity rule is generic.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_tree_model: tuple[str, ...] = ()
    tegra_release: tuple[str, ...] = ()
    machine: tuple[str, ...] = ()
    cpu_flags_all: tuple[str, ...] = ()
    cpu_flags_any: tuple[str, ...] = ()

    @property
    def identifies_board(self) -> bool:
        return bool(self.device_tree_model or self.tegra_release)


class DeviceProfile(BaseModel):
    """One device class: preferred runtimes in order, precisions worth using, threads, notes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str
    runtimes: tuple[str, ...] = Field(min_length=1)
    precisions: tuple[Precision, ...] = Field(min_length=1)
    threads: int | None = Field(default=None, ge=1)  # None: every core
    notes: str = ""
    match: MatchRules = MatchRules()

    @field_validator("runtimes")
    @classmethod
    def _known_runtimes(cls, runtimes: tuple[str, ...]) -> tuple[str, ...]:
        from ..runtimes import RUNTIMES

        known = RUNTIMES.names()
        for name in runtimes:
            if name not in known:
                raise ValueError(f"unknown runtime {name!r} (known: {', '.join(known)}){did_you_mean(name, known)}")
        if len(set(runtimes)) != len(runtimes):
            raise ValueError("a runtime is listed twice")
        return runtimes


def profiles_dir() -> Path:
    """The folder holding the bundled profiles."""
    return Path(str(resources.files("edgevision.devices") / "profiles"))


def profile_names() -> list[str]:
    """Names of the bundled profiles, sorted."""
    return sorted(p.stem for p in profiles_dir().iterdir() if p.suffix in PROFILE_SUFFIXES)


def bundled_profiles() -> list[DeviceProfile]:
    return [load_profile(name) for name in profile_names()]


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """A bundled profile by name (``"raspberry_pi_5"``) or any profile YAML file by path."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.suffix in PROFILE_SUFFIXES or os.sep in text or "/" in text:
        if not path.is_file():
            raise DeviceError(f"Device profile file {path} does not exist.")
        return read_profile(path)
    bundled = profiles_dir() / f"{text}.yaml"
    if not bundled.is_file():
        names = profile_names()
        raise DeviceError(
            f"Unknown device profile {text!r}. Available: {', '.join(names)}.{did_you_mean(text, names)} "
            "Or pass the path of your own profile YAML."
        )
    return _read_bundled(bundled)


@cache
def _read_bundled(path: Path) -> DeviceProfile:
    profile = read_profile(path)
    if profile.name != path.stem:
        raise DeviceError(f"{path.name}: name {profile.name!r} must match the file name {path.stem!r}.")
    return profile


def read_profile(path: Path) -> DeviceProfile:
    """Parse and validate one profile file; errors name the file and the offending key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise DeviceError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceError(f"Cannot read device profile {path}: {exc}.") from None
    if not isinstance(raw, dict):
        raise DeviceError(f"{path} must hold a mapping of keys (name, title, runtimes, ...), not {type(raw).__name__}.")
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as exc:
        raise DeviceError(f"{path}: {_describe(exc)}.") from None


def _describe(exc: ValidationError) -> str:
    """The first few problems as 'key: what is wrong', unknown keys with a did-you-mean."""
    errors = exc.errors()
    locations = [tuple(map(str, e["loc"])) for e in errors]
    # drop an error on a container whose element already has one; unknown keys first (they explain "missing")
    errors = [e for e, loc in zip(errors, locations) if not any(o[: len(loc)] == loc and o != loc for o in locations)]
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    parts = []
    for error in errors[:3]:
        location = [str(p) for p in error["loc"]]
        key = ".".join(location) or "profile"
        if error["type"] == "extra_forbidden":
            model = MatchRules if location[:1] == ["match"] else DeviceProfile
            hint = did_you_mean(location[-1], model.model_fields).strip()
            parts.append(f"unknown key {key!r}" + (f" ({hint[0].lower()}{hint[1:]})" if hint else ""))
        elif error["type"] == "missing":
            parts.append(f"missing key {key!r}")
        else:
            parts.append(f"{key}: {error['msg'].removeprefix('Value error, ')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
