"""`edgevision run`: the stream from the command line, with its outputs and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgevision.cli import app

runner = CliRunner()


def test_run_writes_results_video_and_a_summary(onnx_bundle, digit_video, tmp_path):
    jsonl, video = tmp_path / "r.jsonl", tmp_path / "a.mp4"
    result = runner.invoke(app, ["run", str(onnx_bundle.path), "--source", str(digit_video), "--jsonl", str(jsonl),
                                 "--save-video", str(video), "--max-frames", "20", "--top-k", "2", "--threads", "1",
                                 "--no-display"])
    assert result.exit_code == 0, result.output
    assert "stream summary" in result.output and "20 processed, 0 dropped" in result.output
    assert "max frames" in result.output and "onnxruntime" in result.output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(lines) == 20 and len(lines[0]["top_k"]) == 2
    assert video.stat().st_size > 10_000


def test_workers_flag_gives_the_same_results_in_frame_order(onnx_bundle, digit_video, tmp_path):
    runs = {}
    for workers in ("1", "2"):
        jsonl = tmp_path / f"w{workers}.jsonl"
        result = runner.invoke(app, ["run", str(onnx_bundle.path), "--source", str(digit_video), "--jsonl", str(jsonl),
                                     "--workers", workers, "--threads", "2", "--no-display"])
        assert result.exit_code == 0, result.output
        assert ("2 workers" in result.output) == (workers == "2")
        runs[workers] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["index"] for line in runs["2"]] == list(range(len(runs["1"])))
    assert [line["top_k"][0]["label"] for line in runs["2"]] == [line["top_k"][0]["label"] for line in runs["1"]]


def test_display_asked_for_headless_is_skipped_with_a_note(onnx_bundle, digit_video, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = runner.invoke(app, ["run", str(onnx_bundle.path), "--source", str(digit_video), "-n", "3", "--display"])
    assert result.exit_code == 0, result.output
    assert "no display here" in result.output


def test_device_picks_the_runtime_and_threads(onnx_bundle, digit_video):
    devices = pytest.importorskip("edgevision.devices", reason="device profiles are not built yet")
    if "raspberry_pi_5" not in devices.profile_names():
        pytest.skip("no raspberry_pi_5 profile")
    profile = devices.load_profile("raspberry_pi_5")
    expected = devices.choose_runtime(profile, "onnx")
    result = runner.invoke(app, ["run", str(onnx_bundle.path), "--source", str(digit_video), "-n", "3",
                                 "--device", "raspberry_pi_5"])
    assert result.exit_code == 0, result.output
    assert f"runtime {expected}" in result.output and f"threads {profile.threads}" in result.output


@pytest.mark.parametrize(
    ("source", "message"),
    [("no_such_clip.mp4", "does not exist"), ("webcamm", "Unknown source"), ("97", "Camera 97 did not open")],
)
def test_bad_sources_are_one_red_line(onnx_bundle, source, message):
    done = subprocess.run([sys.executable, "-m", "edgevision.cli", "run", str(onnx_bundle.path), "--source", source],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in done.stderr
