"""The architecture matrix (scripts/architecture_matrix.py): every cell is ✔ or a named edgevision reason."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def matrix(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts/ is not a package; undone after the test
    return importlib.import_module("architecture_matrix")


def test_a_raw_library_error_is_marked_unhandled_and_an_edgevision_error_is_a_reason(matrix):
    from edgevision.errors import ExportError

    def library_bug() -> str:
        raise RuntimeError("shape '[1, 768, 16]' is invalid for input of size 6144")

    def refused() -> str:
        raise ExportError("OpenVINO could not convert the model: tracing failed. Export to ONNX to see why.")

    bug, reason = matrix.run_cell(library_bug), matrix.run_cell(refused)
    assert not bug.ok and bug.unhandled and bug.shown.startswith("✘ unhandled RuntimeError")
    assert not reason.ok and not reason.unhandled
    assert reason.shown == "✘ OpenVINO could not convert the model: tracing failed"
    assert matrix.run_cell(lambda: "99.6%").shown == "✔ 99.6%"


def test_table_and_readme_block(matrix, tmp_path):
    cells = {name: {"ok": True, "text": "100.0%", "unhandled": False, "seconds": 1.0} for name in matrix.COLUMNS}
    cells["prune"] = {"ok": False, "text": "swin_t cannot be pruned: x | y. More.", "unhandled": False, "seconds": 1.0}
    table = matrix.render_table([{"architecture": "swin_t", "epochs": 2, "val_top1": 0.5, "cells": cells}])
    assert "| swin_t | 2 | 50.0% | ✔ 100.0% |" in table and table.rstrip().endswith("✘ swin_t cannot be pruned: x / y |")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{matrix.README_BEGIN}\nold\n{matrix.README_END}\noutro\n")
    matrix.update_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and table in text and text.startswith("intro") and text.endswith("outro\n")


@pytest.mark.slow
def test_the_demo_vit_row_has_no_unhandled_cell(matrix, digits_32, tmp_path):
    row = matrix.architecture_row("vit_tiny", digits_32, tmp_path, epochs=1, log=lambda _: None)
    assert set(row["cells"]) == set(matrix.COLUMNS)
    unhandled = {name: cell["text"] for name, cell in row["cells"].items() if cell["unhandled"]}
    assert not unhandled
    for precision in ("fp32", "fp16"):  # float exports of the ViT pass parity on every format
        for fmt in matrix.FORMATS:
            assert row["cells"][f"{fmt} {precision}"]["ok"], row["cells"][f"{fmt} {precision}"]


@pytest.fixture
def digits_32(tmp_path_factory):
    from edgevision.data.digits import make_digits_folder

    return make_digits_folder(tmp_path_factory.mktemp("digits32"), size=32)


def test_a_parity_reason_is_shown_without_what_the_column_says_or_paths(matrix):
    failed = ("onnx fp16 bundle failed parity: top-1 agreement 99.26% (need ≥ 99.50%), max |Δlogit| 0.0648 on "
              "/tmp/x/val (270 images) through onnxruntime (fp16). Nothing was written.")
    assert matrix.compact_reason(failed) == "top-1 agreement 99.26% (need ≥ 99.50%), max |Δlogit| 0.0648"
    converter = "litert-torch could not convert: /work/.venv/lib/torch/nn/modules/linear.py:134:0: error: 'tfl.x' op"
    assert matrix.compact_reason(converter) == "litert-torch could not convert: linear.py:134:0: error: 'tfl.x' op"
