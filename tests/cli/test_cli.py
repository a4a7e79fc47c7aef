"""The CLI is a thin layer over the API: same results, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgevision.cli import app

runner = CliRunner()


def test_export_info_bench(checkpoint, digits, tmp_path):
    out = tmp_path / "bundles"
    result = runner.invoke(app, ["export", str(checkpoint), "-o", str(out), "-f", "onnx,torch", "-p", "fp32",
                                 "--parity-data", str(digits.val)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["onnx-fp32", "torch-fp32"]

    info = runner.invoke(app, ["info", str(out / "onnx-fp32")])
    assert info.exit_code == 0 and "passed" in info.output and "NCHW" in info.output
    raw = runner.invoke(app, ["info", "--json", str(out / "onnx-fp32")])
    assert json.loads(raw.output)["format"] == "onnx"

    bench = runner.invoke(app, ["bench", str(out / "torch-fp32"), str(out / "onnx-fp32"), "-n", "10", "--warmup", "1",
                                "-t", "1", "--data", str(digits.val), "-o", str(tmp_path / "report")])
    assert bench.exit_code == 0, bench.output
    assert "speed-up" in bench.output and "onnxruntime" in bench.output
    assert (tmp_path / "report" / "bench.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "missing.pt", "-o", "x"], "does not exist"),
        (["export", "missing.pt", "-o", "x", "-f", "onnxx"], "Did you mean 'onnx'"),
        (["bench", "nowhere"], "does not exist"),
        (["bench", "nowhere", "-t", "zero"], "--threads"),
    ],
)
def test_errors_are_clear(args, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from edgevision.errors import EdgeVisionError

    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, EdgeVisionError) and message in str(result.exception)


def test_bench_unknown_runtime(onnx_bundle):
    result = runner.invoke(app, ["bench", str(onnx_bundle.path), "-r", "openvnio"])
    assert "Did you mean 'openvino'" in str(result.exception)


def test_bench_with_device_profile_picks_runtime(onnx_bundle, tmp_path):
    profile = tmp_path / "board.yaml"
    profile.write_text(
        "name: test_board\ntitle: Test board\nruntimes: [onnxruntime]\nprecisions: [fp32]\nthreads: 1\n"
    )
    result = runner.invoke(app, ["bench", str(onnx_bundle.path), "--device", str(profile), "-n", "5", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    assert "test_board" in result.output and "onnxruntime" in result.output
