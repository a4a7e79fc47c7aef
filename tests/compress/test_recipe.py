"""Recipes: validated YAML with errors that name the line and the key."""

from __future__ import annotations

import textwrap

import pytest

from edgevision import errors
from edgevision.compress.recipe import load_recipe


def _write(tmp_path, text: str):
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_valid_recipe(tmp_path):
    recipe = load_recipe(_write(tmp_path, """
        name: edge
        stages:
          - prune: {target_macs_ratio: 0.5, importance: taylor, steps: 2, finetune_epochs_per_step: 1}
          - distill: {epochs: 3, temperature: 4, alpha: 0.8}
        export: {formats: [onnx, openvino], precision: int8, ignored_scope: [fc]}
        max_accuracy_drop: 0.01
        on_budget_exceeded: fp16
    """))
    assert [s.kind for s in recipe.stages] == ["prune", "distill"]
    assert recipe.stages[0].prune.to_config().target_macs_ratio == 0.5
    assert recipe.export.ignored_scope == ("fc",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stages:\n  - prune:\n      target_macs_ratio: 0.5\n      importanc: l2\n",
         r"recipe.yaml:4: stages\[0\].prune.importanc: unknown key 'importanc'.*Did you mean 'importance'"),
        ("stages:\n  - prune:\n      target_macs_ratio: 1.5\n", r"recipe.yaml:3: stages\[0\].prune.target_macs_ratio: .*less than 1"),
        ("export:\n  formats: [onnx, tflight]\n", r"recipe.yaml:2: export.formats\[1\]: Input should be"),
        ("max_accuracy_drop: 0.01\nexprot: {}\n", r"recipe.yaml:2: exprot: unknown key.*Did you mean 'export'"),
        ("stages:\n  - distill: {epochs: 2}\n  - prune: {channel_ratio: 0.5}\n", r"recipe.yaml:1: stages: distill must come after prune"),
        ("stages:\n  - prune: {}\n", r"recipe.yaml:2: stages\[0\].prune: .*target_macs_ratio=0.5 .* or channel_ratio"),
        ("stages: [\n", r"recipe.yaml:2: not valid YAML"),
    ],
)
def test_bad_recipes_get_line_precise_errors(tmp_path, text, expected):
    with pytest.raises(errors.ConfigError, match=expected):
        load_recipe(_write(tmp_path, text))


def test_missing_recipe(tmp_path):
    with pytest.raises(errors.ConfigError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")


def test_shipped_example_recipe_is_valid():
    from pathlib import Path

    recipe = load_recipe(Path(__file__).parents[2] / "examples" / "recipes" / "digits.yaml")
    assert [s.kind for s in recipe.stages] == ["prune", "distill"] and recipe.export.precision.value == "int8"
    detector = load_recipe(Path(__file__).parents[2] / "examples" / "recipes" / "digits_detector.yaml")
    assert detector.export.head == "float" and detector.export.compare_plain


def test_head_policy_is_float_or_plain(tmp_path):
    with pytest.raises(errors.ConfigError, match="head"):
        load_recipe(_write(tmp_path, "export: {head: half}\n"))


def test_recipe_data_section_names_a_held_out_test_split(tmp_path):
    from pathlib import Path

    from edgevision.compress.pipeline import Pipeline

    recipe = load_recipe(_write(tmp_path, "data: {train: d/train, val: d/val, test: d/test}\n"))
    splits, calibration = Pipeline(recipe)._data(None, None, None, None)
    assert (splits.test, splits.report_split, splits.held_out, calibration) == (Path("d/test"), "test", True, Path("d/train"))
    without = load_recipe(_write(tmp_path, "data: {train: d/train, val: d/val}\n"))
    splits, _ = Pipeline(without)._data(None, None, None, None)
    assert (splits.test, splits.report, splits.report_split) == (None, Path("d/val"), "val")
    splits, _ = Pipeline(without)._data(None, None, "elsewhere/test", None)  # an argument wins over the recipe
    assert splits.test == Path("elsewhere/test")
    with pytest.raises(errors.ConfigError, match="must be held out"):
        Pipeline(recipe)._data(None, None, "d/val", None)
