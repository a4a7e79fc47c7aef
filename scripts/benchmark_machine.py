"""What `make bench` ran on and with, read from the machine and the engines at run time.

Nothing about the CPU, its features, the engines or the code is written by hand in the generated
docs: it comes from here (/proc/cpuinfo through `edgevision.devices.detect`, the engines' own
reports, installed package versions and git).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

from edgevision.devices.detect import NOTABLE_CPU_FLAGS, read_facts
from edgevision.export.base import package_version

REPO = Path(__file__).resolve().parent.parent
ENGINE_PACKAGES = ("edgevision", "torch", "onnxruntime", "openvino", "nncf", "torch-pruning", "litert-torch",
                   "ai-edge-litert")


def describe_machine() -> dict:
    """CPU model, core count, the notable CPU flags present and absent, OS, Python, load average."""
    facts = read_facts()
    x86 = any(f.startswith(("avx", "sse")) for f in facts.cpu_flags)
    relevant = [f for f in NOTABLE_CPU_FLAGS if f.startswith(("avx", "amx")) == x86]
    return {
        "cpu_model": facts.cpu_model or facts.cpuinfo_model or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "architecture": facts.machine,
        "cpu_flags_present": [f for f in relevant if f in facts.cpu_flags],
        "cpu_flags_absent": [f for f in relevant if f not in facts.cpu_flags],
        "openvino_cpu_capabilities": openvino_cpu_capabilities(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_start": [round(v, 2) for v in os.getloadavg()],
    }


def openvino_cpu_capabilities() -> list[str] | None:
    """What OpenVINO says its CPU plugin can compute in here (e.g. FP32, BF16, INT8); None without OpenVINO."""
    try:
        import openvino as ov

        return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]
    except Exception:  # noqa: BLE001 - not installed, or no CPU plugin: the doc says "not reported"
        return None


def engine_versions() -> dict[str, str]:
    return {name: package_version(name) for name in ENGINE_PACKAGES}


def code_version(repo: Path = REPO) -> dict:
    """The git commit of the code, and whether the work tree had uncommitted changes to tracked files."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}
