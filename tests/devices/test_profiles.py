"""Device profiles: the bundled YAML files, user profiles, clear errors, and picking a runtime."""

from __future__ import annotations

import pytest

from edgevision.devices import choose_runtime, load_profile, profile_names, resolve_device
from edgevision.errors import DeviceError
from edgevision.runtimes import RUNTIMES
from edgevision.types import Precision

EXPECTED = {"raspberry_pi_4", "raspberry_pi_5", "jetson_nano", "jetson_orin_nano", "x86_64_cpu"}

VALID = """\
name: my_board
title: My board
runtimes: [onnxruntime]
precisions: [fp32]
threads: 2
match:
  machine: [aarch64]
"""


def test_bundled_profiles_load_and_name_known_runtimes():
    names = profile_names()
    assert EXPECTED <= set(names)
    for name in names:
        profile = load_profile(name)
        assert profile.name == name and profile.title
        assert all(runtime in RUNTIMES for runtime in profile.runtimes)
        assert profile.match.machine, f"{name} should say which architectures it fits"


def test_profiles_say_what_suits_each_board():
    assert load_profile("jetson_orin_nano").runtimes[0] == "tensorrt"
    assert load_profile("jetson_orin_nano").precisions[0] is Precision.FP16
    assert "tensorrt" not in load_profile("jetson_nano").runtimes  # TensorRT 8.2 on JetPack 4 is too old
    assert Precision.FP16 not in load_profile("raspberry_pi_4").precisions  # the A72 has no FP16 arithmetic
    assert Precision.FP16 in load_profile("raspberry_pi_5").precisions
    assert load_profile("raspberry_pi_4").threads == 4
    assert load_profile("x86_64_cpu").threads is None


def test_user_profile_loads_from_a_path(tmp_path):
    path = tmp_path / "my_board.yaml"
    path.write_text(VALID)
    profile = load_profile(path)
    assert profile.name == "my_board" and profile.threads == 2
    assert load_profile(str(path)) == profile


def test_unknown_profile_name_suggests_the_near_miss():
    with pytest.raises(DeviceError, match="Did you mean 'raspberry_pi_4'"):
        load_profile("raspbery_pi_4")
    with pytest.raises(DeviceError, match="does not exist"):
        load_profile("/no/such/profile.yaml")


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (VALID.replace("runtimes:", "runtime:"), r"unknown key 'runtime' \(did you mean 'runtimes'\?\)"),
        (VALID.replace("machine:", "machnie:"), r"unknown key 'match.machnie' \(did you mean 'machine'\?\)"),
        (VALID.replace("[onnxruntime]", "[openvno]"), r"runtimes: unknown runtime 'openvno'.*Did you mean 'openvino'"),
        (VALID.replace("[fp32]", "[fp8]"), r"precisions\.0"),
        (VALID.replace("threads: 2", "threads: 0"), r"threads"),
        (VALID.replace("title: My board\n", ""), r"missing key 'title'"),
        (VALID.replace("runtimes: [onnxruntime]", "runtimes: []"), r"runtimes"),
        (VALID + "  device_tree_model: [unclosed\n", r"not valid YAML \(line \d+\)"),
        ("- just\n- a list\n", r"must hold a mapping"),
    ],
    ids=["unknown-key", "unknown-match-key", "unknown-runtime", "bad-precision", "zero-threads", "missing-key",
         "no-runtimes", "yaml-syntax", "not-a-mapping"],
)
def test_broken_profile_is_a_clear_error_naming_file_and_key(tmp_path, broken, message):
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    with pytest.raises(DeviceError, match=message) as info:
        load_profile(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_choose_runtime_takes_the_first_installed_one_that_reads_the_format():
    pi = load_profile("raspberry_pi_4")  # tflite, onnxruntime, openvino
    everything = dict.fromkeys(RUNTIMES.names(), True)
    assert choose_runtime(pi, "tflite", everything) == "tflite"
    assert choose_runtime(pi, "onnx", everything) == "onnxruntime"  # tflite cannot read ONNX
    assert choose_runtime(pi, "openvino", {**everything, "tflite": False}) == "openvino"
    orin = load_profile("jetson_orin_nano")
    assert choose_runtime(orin, "onnx", everything) == "tensorrt"
    assert choose_runtime(orin, "onnx", {**everything, "tensorrt": False}) == "onnxruntime"


def test_choose_runtime_explains_why_nothing_fits():
    orin = load_profile("jetson_orin_nano")
    installed = {**dict.fromkeys(RUNTIMES.names(), False), "openvino": True}
    with pytest.raises(DeviceError) as info:
        choose_runtime(orin, "onnx", installed)
    message = str(info.value)
    assert "pip install 'edgevision[tensorrt]'" in message and "pip install 'edgevision[onnx]'" in message
    assert "tflite (not installed" in message
    with pytest.raises(DeviceError, match="runs tflite, not openvino"):
        choose_runtime(load_profile("raspberry_pi_4"), "openvino", {**installed, "tflite": True, "openvino": False})
    with pytest.raises(DeviceError, match="Unknown bundle format"):
        choose_runtime(orin, "caffe", installed)


def test_choose_runtime_mentions_installed_runtimes_outside_the_profile():
    nano = load_profile("jetson_nano")  # onnxruntime, tflite
    installed = {**dict.fromkeys(RUNTIMES.names(), False), "openvino": True}
    with pytest.raises(DeviceError, match="outside the profile that could run it: openvino"):
        choose_runtime(nano, "openvino", installed)


def test_resolve_device_by_name_or_auto():
    profile, reasons = resolve_device("raspberry_pi_5")
    assert profile.name == "raspberry_pi_5" and reasons == ["named explicitly (raspberry_pi_5)"]
    detected, why = resolve_device("auto")
    assert detected.name in profile_names() and why
    with pytest.raises(DeviceError, match="Did you mean"):
        resolve_device("jetson_orn")
