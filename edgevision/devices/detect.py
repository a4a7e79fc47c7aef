"""Recognise the board this runs on from what Linux exposes, and say why.

Reads the device-tree model (Raspberry Pi, Jetson), the Tegra release file (Jetson, also inside
L4T containers where the device tree is hidden), CPU flags from /proc/cpuinfo (AVX2, AVX-512,
VNNI, AMX) and the machine architecture. Every path hangs off `root`, so tests fake a board's
filesystem in a temporary folder.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DeviceError
from .profile import DeviceProfile, MatchRules, bundled_profiles

DEVICE_TREE_MODEL_FILES = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
TEGRA_RELEASE_FILE = "etc/nv_tegra_release"
CPUINFO_FILE = "proc/cpuinfo"
#: CPU flags worth reporting: they decide which precisions pay off.
NOTABLE_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16", "asimddp", "fphp")


@dataclass(frozen=True)
class DeviceFacts:
    """What the operating system says about this machine (empty strings where it says nothing)."""

    machine: str
    device_tree_model: str = ""
    tegra_release: str = ""
    cpu_model: str = ""
    cpuinfo_model: str = ""  # the "Model" line Raspberry Pi kernels add to /proc/cpuinfo
    cpu_flags: frozenset[str] = frozenset()
    cpu_count: int | None = None


@dataclass(frozen=True)
class Detection:
    """The profile that matched and the evidence, one human-readable line per reason."""

    profile: DeviceProfile
    reasons: list[str] = field(default_factory=list)
    facts: DeviceFacts | None = None


def read_facts(root: Path = Path("/"), *, machine: str | None = None) -> DeviceFacts:
    """Collect the facts under `root`; `machine` defaults to this interpreter's platform.machine()."""
    root = Path(root)
    model = next((text for rel in DEVICE_TREE_MODEL_FILES if (text := _read(root / rel))), "")
    tegra = _read(root / TEGRA_RELEASE_FILE)
    cpuinfo = _read(root / CPUINFO_FILE)
    flags: set[str] = set()
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in {"flags", "features"}:  # x86 / ARM
            flags.update(value.split())
        else:
            fields.setdefault(key, value.strip())
    board = fields.get("model", "")  # a board name on Raspberry Pi OS, a number on x86
    return DeviceFacts(
        machine=machine if machine is not None else platform.machine(),
        device_tree_model=model,
        tegra_release=tegra.splitlines()[0].strip() if tegra else "",
        cpu_model=fields.get("model name", ""),
        cpuinfo_model="" if board.isdigit() else board,
        cpu_flags=frozenset(flags),
        cpu_count=os.cpu_count() if root == Path("/") else None,
    )


def detect(
    root: Path = Path("/"),
    *,
    machine: str | None = None,
    profiles: list[DeviceProfile] | None = None,
) -> Detection:
    """The best-matching profile for this machine (or the one under `root`), with its reasons.

    The most specific match wins: a device-tree model beats the Tegra release file, which beats
    CPU flags, which beat the architecture alone.
    """
    facts = read_facts(root, machine=machine)
    candidates = profiles if profiles is not None else bundled_profiles()
    scored = []
    for profile in candidates:
        result = match_profile(profile.match, facts)
        if result is not None:
            scored.append((result[0], profile.name, profile, result[1]))
    if not scored:
        raise DeviceError(
            f"No device profile matches this machine ({describe_facts(facts)}). "
            f"Name one instead (available: {', '.join(p.name for p in candidates)}) or write your own profile YAML."
        )
    scored.sort(key=lambda item: (-item[0], item[1]))
    best_score, _, profile, reasons = scored[0]
    ties = [name for score, name, _, _ in scored[1:] if score == best_score]
    if ties:
        reasons = [*reasons, f"also matched equally: {', '.join(ties)} (picked by name)"]
    flags = cpu_flag_summary(facts)
    if flags:
        reasons = [*reasons, flags]
    return Detection(profile=profile, reasons=reasons, facts=facts)


def match_profile(rules: MatchRules, facts: DeviceFacts) -> tuple[int, list[str]] | None:
    """(specificity score, reasons) if `facts` satisfy `rules`, else None."""
    score, reasons = 0, []
    if rules.identifies_board:
        model_hit = _find(rules.device_tree_model, facts.device_tree_model)
        cpuinfo_hit = not facts.device_tree_model and _find(rules.device_tree_model, facts.cpuinfo_model)
        tegra_hit = _find(rules.tegra_release, facts.tegra_release)
        if model_hit:
            score += 100
            reasons.append(f"device-tree model is {facts.device_tree_model!r} (contains {model_hit!r})")
        elif cpuinfo_hit:
            score += 90
            reasons.append(f"/proc/cpuinfo model is {facts.cpuinfo_model!r} (contains {cpuinfo_hit!r}); no device tree")
        elif tegra_hit:
            score += 50
            where = "unreadable" if not facts.device_tree_model else repr(facts.device_tree_model)
            reasons.append(f"Tegra release is {facts.tegra_release!r} (contains {tegra_hit!r}); device-tree model {where}")
        else:
            return None
    if rules.machine:
        if facts.machine.lower() not in {m.lower() for m in rules.machine}:
            return None
        score += 1
        reasons.append(f"machine is {facts.machine}")
    if rules.cpu_flags_all:
        missing = [f for f in rules.cpu_flags_all if f not in facts.cpu_flags]
        if missing:
            return None
        score += 10
        reasons.append(f"CPU has {', '.join(rules.cpu_flags_all)}")
    if rules.cpu_flags_any:
        present = [f for f in rules.cpu_flags_any if f in facts.cpu_flags]
        if not present:
            return None
        score += 20
        reasons.append(f"CPU has {', '.join(present)}")
    if facts.cpu_model:
        reasons.append(f"CPU model {facts.cpu_model!r}")
    return score, reasons


def cpu_flag_summary(facts: DeviceFacts) -> str:
    """'CPU flags: avx2, avx512_vnni present; amx_int8 absent' for the flags of this architecture."""
    if not facts.cpu_flags:
        return ""
    x86 = any(f.startswith(("avx", "sse")) for f in facts.cpu_flags)
    relevant = [f for f in NOTABLE_CPU_FLAGS if f.startswith(("avx", "amx")) == x86]
    present = [f for f in relevant if f in facts.cpu_flags]
    absent = [f for f in relevant if f not in facts.cpu_flags]
    parts = ([", ".join(present) + " present"] if present else []) + ([", ".join(absent) + " absent"] if absent else [])
    return "CPU flags: " + "; ".join(parts)


def describe_facts(facts: DeviceFacts) -> str:
    parts = [f"machine {facts.machine or '?'}"]
    if facts.device_tree_model:
        parts.append(f"device-tree model {facts.device_tree_model!r}")
    if facts.tegra_release:
        parts.append(f"Tegra release {facts.tegra_release!r}")
    notable = [f for f in NOTABLE_CPU_FLAGS if f in facts.cpu_flags]
    if notable:
        parts.append("CPU flags " + ", ".join(notable))
    return "; ".join(parts)


def _find(needles: tuple[str, ...], haystack: str) -> str | None:
    lowered = haystack.lower()
    return next((n for n in needles if n.lower() in lowered), None) if haystack else None


def _read(path: Path) -> str:
    """A small text file's content without NULs (device-tree strings end in one), or '' if unreadable."""
    try:
        return path.read_bytes().replace(b"\x00", b"").decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
