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


def test_bench_on_a_data_root_measures_its_test_split_and_says_so(onnx_bundle, digits, tmp_path):
    result = runner.invoke(app, ["bench", str(onnx_bundle.path), "--data", str(digits.train.parent), "-n", "5",
                                 "--warmup", "0", "-t", "1", "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert "top-1 (test)" in result.output
    report = json.loads((tmp_path / "report" / "bench.json").read_text())
    assert report["settings"]["accuracy_split"] == "test" and report["settings"]["accuracy_data"] == str(digits.test)
    assert [(row["accuracy_split"], row["accuracy_images"]) for row in report["rows"]] == [("test", 360)]
    assert "| size MB | top-1 (test) |" in (tmp_path / "report" / "bench.md").read_text()
    import csv

    with open(tmp_path / "report" / "bench.csv", newline="") as handle:
        assert [row["accuracy_split"] for row in csv.DictReader(handle)] == ["test"]


def test_bench_split_name_and_an_ambiguous_root(onnx_bundle, digits, tmp_path):
    named = runner.invoke(app, ["bench", str(onnx_bundle.path), "--data", str(digits.test), "--split-name",
                                "digits-test", "-n", "5", "--warmup", "0", "-t", "1"])
    assert named.exit_code == 0, named.output
    assert "top-1 (digits-test)" in named.output
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    ambiguous = runner.invoke(app, ["bench", str(onnx_bundle.path), "--data", str(tmp_path), "-n", "5"])
    from edgevision.errors import DataError

    assert isinstance(ambiguous.exception, DataError) and "no test/ split" in str(ambiguous.exception)
    lonely = runner.invoke(app, ["bench", str(onnx_bundle.path), "--split-name", "test", "-n", "5"])
    assert "split_name names the split given as data" in str(lonely.exception)


def test_train_demo_reports_test_accuracy_separately(tmp_path):
    result = runner.invoke(app, ["train-demo", "-o", str(tmp_path / "demo"), "--arch", "mobilenet_v3_small",
                                 "--size", "16", "--epochs", "2", "--threads", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "demo" / "train.json").read_text())
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["best_epoch"] in (1, 2)
    assert record["val_accuracy"] == max(h["val_accuracy"] for h in record["history"])  # val chose the epoch
    assert record["test"].endswith("test")
    assert f"test top-1 {record['test_accuracy']:.2%} (held out)" in result.output
    assert f"(chose epoch {record['best_epoch']}/2)" in result.output


def test_train_demo_trains_the_demo_vit_with_its_own_recipe(tmp_path):
    from edgevision.model import TrainedModel
    from edgevision.train import TrainConfig
    from edgevision.transformers import TRAINING

    recipe = TrainConfig.for_architecture("vit_tiny", input_size=32, epochs=None)
    assert (recipe.epochs, recipe.learning_rate) == (TRAINING["epochs"], TRAINING["learning_rate"])
    assert TrainConfig.for_architecture("resnet18", epochs=None) == TrainConfig(architecture="resnet18")
    result = runner.invoke(app, ["train-demo", "-o", str(tmp_path / "vit"), "--arch", "vit_tiny", "--epochs", "1",
                                 "--threads", "2"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "vit" / "train.json").read_text())
    assert record["epochs"] == 1 and record["architecture"] == "vit_tiny"
    loaded = TrainedModel.load(tmp_path / "vit" / "model.pt")
    assert type(loaded.module).__name__ == "VisionTransformer" and loaded.input_size == (32, 32)


def test_demo_gates_parity_on_val_and_reports_top1_on_test(tmp_path):
    out = tmp_path / "demo"
    # resnet18: one epoch of MobileNetV3-Small at 16 px answers the same for every image (parity not established)
    result = runner.invoke(app, ["demo", "-o", str(out), "--arch", "resnet18", "--size", "16", "--epochs", "1",
                                 "--formats", "onnx", "--precisions", "fp32", "--iterations", "5", "--threads", "1",
                                 "--no-compress", "--no-detect"])
    assert result.exit_code == 0, result.output
    assert "top-1 (test)" in result.output and "held-out test split (360 images)" in result.output
    assert "of 270 val labels agree" in result.output  # parity is a gate: it runs on val
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert bench["settings"]["accuracy_split"] == "test"
    assert {(row["accuracy_split"], row["accuracy_images"]) for row in bench["rows"]} == {("test", 360)}
    manifest = json.loads((out / "bundles" / "onnx-fp32" / "edgevision.json").read_text())
    assert manifest["parity"]["data"].startswith(str(out / "data" / "val"))
