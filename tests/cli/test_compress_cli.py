"""`edgevision compress` from flags and from a recipe; failures leave nothing behind."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgevision import errors
from edgevision.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_compress_from_flags_prunes_distils_quantises(checkpoint, digits, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "compress", str(checkpoint), "--data", str(digits.train.parent), "--prune", "0.6", "--distill", "--epochs", "1",
        "--quantize", "int8", "--export", "onnx", "--max-accuracy-drop", "0.05", "-o", str(out),
    ])
    assert result.exit_code == 0, result.output
    bundles = sorted(p.name for p in (out / "bundles").iterdir())
    assert bundles == ["onnx-fp32", "onnx-int8", "original-onnx-fp32", "original-torch-fp32"]
    report = json.loads((out / "compress_report.json").read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert stages["pruned"]["macs"] <= 0.6 * stages["original"]["macs"] * 1.02
    assert {"distill", "fine-tune"} <= set(report["finetune_comparison"])  # measured, not asserted
    assert "onnx" in report["int8_verdicts"]
    rows = {row["name"]: row for row in report["bench"]}
    assert rows["onnx-int8"]["accuracy"] >= stages["original"]["accuracy"] - 0.05
    assert report["accuracy_split"]["split"] == "test" and {s["split"] for s in report["stages"]} == {"test"}
    assert {row["accuracy_split"] for row in report["bench"]} == {"test"} and rows["onnx-int8"]["accuracy_images"] == 360
    assert report["finetune_comparison"]["split"] == "test"
    assert (out / "compress_report.md").read_text().startswith("# edgevision compress report")
    assert (out / "accuracy_vs_latency.png").stat().st_size > 1000


def test_compress_from_recipe_fp16(checkpoint, digits, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("export:\n  formats: [onnx]\n  precision: fp16\nbench_iterations: 5\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["compress", str(checkpoint), "--data", str(digits.train.parent), "--recipe", str(recipe),
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "bundles" / "onnx-fp16" / "edgevision.json").is_file()
    report = json.loads((out / "compress_report.json").read_text())
    assert report["accuracy_split"] == {**report["accuracy_split"], "split": "test", "held_out": True}
    assert {row["accuracy_split"] for row in report["bench"]} == {"test"}
    assert {row["accuracy_images"] for row in report["bench"]} == {360}  # the test split, not val's 270
    assert "top-1 (test)" in result.output and "held-out **test** split" in result.output


def _root_without_test(digits, root):
    root.mkdir()
    (root / "train").symlink_to(digits.train, target_is_directory=True)
    (root / "val").symlink_to(digits.val, target_is_directory=True)
    return root


def test_compress_without_a_test_split_says_the_figure_is_on_the_selection_set(checkpoint, digits, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("export:\n  formats: [onnx]\n  precision: fp32\nbench_iterations: 5\n")
    data, out = _root_without_test(digits, tmp_path / "data"), tmp_path / "out"
    result = runner.invoke(app, ["compress", str(checkpoint), "--data", str(data), "--recipe", str(recipe), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "compress_report.json").read_text())
    assert report["accuracy_split"]["split"] == "val" and report["accuracy_split"]["held_out"] is False
    assert "selection set" in report["accuracy_split"]["note"]
    assert {s["split"] for s in report["stages"]} == {"val"}
    assert {(row["accuracy_split"], row["accuracy_images"]) for row in report["bench"]} == {("val", 270)}
    assert "top-1 (val, selection set)" in result.output and "no test split was given" in result.output


def test_explicit_test_flag_and_a_test_that_is_not_held_out(checkpoint, digits, tmp_path):
    data = _root_without_test(digits, tmp_path / "data")
    leaked = runner.invoke(app, ["compress", str(checkpoint), "--data", str(data), "--test", str(digits.val),
                                 "--quantize", "fp32", "--export", "onnx", "-o", str(tmp_path / "out")])
    assert isinstance(leaked.exception, errors.ConfigError) and "must be held out" in str(leaked.exception)
    assert not (tmp_path / "out").exists()
    missing = runner.invoke(app, ["compress", str(checkpoint), "--data", str(data), "--test", str(tmp_path / "nope"),
                                  "-o", str(tmp_path / "out")])
    assert isinstance(missing.exception, errors.DataError) and "does not exist" in str(missing.exception)


def test_bad_recipe_error_names_the_line(checkpoint, digits, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("stages:\n  - prune:\n      target_macs_ration: 0.5\n")
    result = runner.invoke(app, ["compress", str(checkpoint), "--data", str(digits.train.parent), "--recipe", str(recipe),
                                 "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, errors.ConfigError)
    assert "recipe.yaml:3: stages[0].prune.target_macs_ration: unknown key" in str(result.exception)
    assert not (tmp_path / "out").exists()


def test_accuracy_budget_failure_writes_nothing(checkpoint, digits, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "compress", str(checkpoint), "--data", str(digits.train.parent), "--prune", "0.1", "--quantize", "fp32",
        "--export", "onnx", "--max-accuracy-drop", "0.0", "-o", str(out),
    ])
    assert isinstance(result.exception, errors.AccuracyBudgetError), result.output
    message = str(result.exception)
    assert "original" in message and "pruned" in message and "nothing was written" in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_onnx_model_cannot_be_pruned(tmp_path, onnx_bundle, digits):
    result = runner.invoke(app, ["compress", str(onnx_bundle.path / "model.onnx"), "--data", str(digits.train.parent),
                                 "--prune", "0.5", "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, errors.CompressionError)
    assert "need the torch model" in str(result.exception)


def test_data_folder_needs_train_and_val(checkpoint, tmp_path):
    result = runner.invoke(app, ["compress", str(checkpoint), "--data", str(tmp_path), "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, errors.DataError) and "train/ and val/" in str(result.exception)


def test_onnx_model_reports_top1_on_test_and_without_test_says_selection_set(onnx_bundle, digits, tmp_path):
    model = str(onnx_bundle.path / "model.onnx")
    held_out = runner.invoke(app, ["compress", model, "--data", str(digits.train.parent), "--size", "32", "--quantize",
                                   "fp32", "--export", "onnx", "-o", str(tmp_path / "out")])
    assert held_out.exit_code == 0, held_out.output
    rows = json.loads((tmp_path / "out" / "bench" / "bench.json").read_text())["rows"]
    assert [(r["accuracy_split"], r["accuracy_images"]) for r in rows] == [("test", 360)]
    assert "top-1 (test)" in held_out.output and "selection set" not in held_out.output
    no_test = runner.invoke(app, ["compress", model, "--data", str(_root_without_test(digits, tmp_path / "data")),
                                  "--size", "32", "--quantize", "fp32", "--export", "onnx", "-o", str(tmp_path / "out2")])
    assert no_test.exit_code == 0, no_test.output
    assert "top-1 (val)" in no_test.output and "selection set" in no_test.output
