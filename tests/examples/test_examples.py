"""The device examples run headless on a video, end to end, as a user would start them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ("video_file", "raspberry_pi_camera", "jetson_csi_camera", "x86_webcam")


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True, text=True, timeout=300, cwd=EXAMPLES.parent,
    )


@pytest.mark.parametrize("name", NAMES)
def test_example_runs_headless_on_a_video(name, onnx_bundle, digit_video):
    done = run_example(name, "--bundle", str(onnx_bundle.path), "--source", str(digit_video), "--max-frames", "40")
    assert done.returncode == 0, done.stderr
    assert "40 frames via onnxruntime" in done.stdout
    assert "FPS" in done.stdout and "frame 0:" in done.stdout.replace("frame     0:", "frame 0:")


def test_jetson_example_says_when_it_falls_back(onnx_bundle, digit_video):
    from edgevision._optional import is_installed

    if is_installed("tensorrt"):
        pytest.skip("TensorRT is installed here, so there is no fallback to see")
    done = run_example("jetson_csi_camera", "--bundle", str(onnx_bundle.path), "--source", str(digit_video),
                       "--max-frames", "3")
    assert "falling back to onnxruntime" in done.stdout


def test_video_file_example_writes_its_outputs(onnx_bundle, digit_video, tmp_path):
    jsonl, video = tmp_path / "r.jsonl", tmp_path / "a.mp4"
    done = run_example("video_file", "--bundle", str(onnx_bundle.path), "--source", str(digit_video),
                       "--jsonl", str(jsonl), "--save-video", str(video))
    assert done.returncode == 0, done.stderr
    assert len(jsonl.read_text().splitlines()) == 60 and video.stat().st_size > 10_000


def test_video_file_example_with_two_workers_keeps_frame_order(onnx_bundle, digit_video, tmp_path):
    jsonl = tmp_path / "r.jsonl"
    done = run_example("video_file", "--bundle", str(onnx_bundle.path), "--source", str(digit_video),
                       "--jsonl", str(jsonl), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["index"] for line in jsonl.read_text().splitlines()] == list(range(60))


def test_a_bad_source_fails_with_one_clear_line(onnx_bundle):
    done = run_example("video_file", "--bundle", str(onnx_bundle.path), "--source", "no_such_clip.mp4")
    assert done.returncode != 0 and "StreamError: Video file no_such_clip.mp4 does not exist" in done.stderr


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_short_and_use_only_the_public_api(name):
    source = (EXAMPLES / f"{name}.py").read_text()
    assert len(source.splitlines()) <= 60
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgevision"):
            assert not any(part.startswith("_") for part in node.module.split(".")), node.module
            assert node.module in {"edgevision", "edgevision.stream", "edgevision.errors", "edgevision.runtimes"}, \
                node.module
            assert not any(alias.name.startswith("_") for alias in node.names)
