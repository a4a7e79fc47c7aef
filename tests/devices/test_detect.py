"""Board detection from a faked filesystem: each board's files as Linux exposes them."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from edgevision.devices import detect, read_facts
from edgevision.errors import DeviceError

PI_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Revision\t: c03114
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
PI5_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n"
X86_CPUINFO = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold\nflags\t\t: {flags}\n"
NANO_RELEASE = "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n"
ORIN_RELEASE = "# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64, DATE: Fri Jul 19 23:24:25 UTC 2024\n"


def fake_root(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    for relative, content in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tmp_path


@pytest.mark.parametrize(
    ("files", "machine", "expected", "evidence"),
    [
        ({"proc/device-tree/model": b"Raspberry Pi 4 Model B Rev 1.4\x00", "proc/cpuinfo": PI_CPUINFO},
         "aarch64", "raspberry_pi_4", "device-tree model is 'Raspberry Pi 4 Model B Rev 1.4'"),
        ({"proc/device-tree/model": b"Raspberry Pi 400 Rev 1.0\x00"}, "armv7l", "raspberry_pi_4", "Raspberry Pi 4"),
        ({"sys/firmware/devicetree/base/model": b"Raspberry Pi 5 Model B Rev 1.0\x00", "proc/cpuinfo": PI5_CPUINFO},
         "aarch64", "raspberry_pi_5", "Raspberry Pi 5"),
        ({"proc/device-tree/model": b"NVIDIA Jetson Nano Developer Kit\x00", "etc/nv_tegra_release": NANO_RELEASE},
         "aarch64", "jetson_nano", "contains 'Jetson Nano'"),
        ({"proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00", "etc/nv_tegra_release": ORIN_RELEASE},
         "aarch64", "jetson_orin_nano", "contains 'Orin Nano'"),
        ({"proc/device-tree/model": b"Jetson AGX Orin Developer Kit\x00", "etc/nv_tegra_release": ORIN_RELEASE},
         "aarch64", "jetson_orin", "contains 'AGX Orin'"),
        ({"etc/nv_tegra_release": ORIN_RELEASE}, "aarch64", "jetson_orin_nano", "device-tree model unreadable"),
        ({"proc/cpuinfo": PI_CPUINFO}, "aarch64", "raspberry_pi_4", "/proc/cpuinfo model"),
        ({"proc/cpuinfo": "processor\t: 0\nFeatures\t: fp asimd\n"}, "aarch64", "arm64_cpu", "machine is aarch64"),
        ({"proc/cpuinfo": X86_CPUINFO.format(flags="fpu sse sse2 avx avx2 fma")}, "x86_64", "x86_64_cpu",
         "avx2 present"),
        ({"proc/cpuinfo": X86_CPUINFO.format(flags="sse avx avx2 avx512f avx512_vnni amx_int8 amx_bf16")}, "x86_64",
         "x86_64_vnni", "CPU has avx512_vnni, amx_int8"),
    ],
    ids=["pi4", "pi400-32bit", "pi5", "jetson-nano", "orin-nano", "agx-orin", "orin-container", "pi-container",
         "generic-arm", "x86", "x86-vnni-amx"],
)
def test_boards_are_recognised_with_reasons(tmp_path, files, machine, expected, evidence):
    detection = detect(fake_root(tmp_path, files), machine=machine)
    assert detection.profile.name == expected, detection.reasons
    assert any(evidence in reason for reason in detection.reasons), detection.reasons


def test_facts_are_read_from_the_given_root(tmp_path):
    root = fake_root(tmp_path, {
        "proc/device-tree/model": b"NVIDIA Jetson Orin Nano Developer Kit\x00",
        "etc/nv_tegra_release": ORIN_RELEASE,
        "proc/cpuinfo": PI5_CPUINFO,
    })
    facts = read_facts(root, machine="aarch64")
    assert facts.device_tree_model == "NVIDIA Jetson Orin Nano Developer Kit"
    assert facts.tegra_release.startswith("# R36 (release)")
    assert {"asimddp", "fphp"} <= facts.cpu_flags
    assert facts.machine == "aarch64"


def test_board_needs_the_right_architecture(tmp_path):
    root = fake_root(tmp_path, {"proc/device-tree/model": b"Raspberry Pi 5 Model B\x00"})
    assert detect(root, machine="x86_64").profile.name.startswith("x86_64")


def test_unknown_machine_is_a_clear_error(tmp_path):
    with pytest.raises(DeviceError, match="No device profile matches this machine .*machine riscv64"):
        detect(tmp_path, machine="riscv64")


@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"}, reason="checks an x86-64 host")
def test_this_machine_is_an_x86_profile():
    detection = detect()
    assert detection.profile.name in {"x86_64_cpu", "x86_64_vnni"}
    assert "machine is x86_64" in detection.reasons
