"""`edgevision export` on a segmenter checkpoint: mask parity on a mask split, reported in the task's own terms."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevision import errors  # noqa: E402
from edgevision.bundle import Bundle  # noqa: E402
from edgevision.cli import app  # noqa: E402
from tests.runtimes.block_segmenter import block_segmenter_model, painted_mask_split  # noqa: E402

runner = CliRunner()


def test_export_a_segmenter_checkpoint_with_parity_on_a_mask_split(tmp_path):
    checkpoint = block_segmenter_model().save(tmp_path / "blocks.pt")
    painted = painted_mask_split(tmp_path / "val")
    result = runner.invoke(app, ["export", str(checkpoint), "-o", str(tmp_path / "out"), "-f", "onnx,torch",
                                 "--parity-data", str(painted)])
    assert result.exit_code == 0, result.output
    assert result.output.count("parity: mask mIoU 1.0000") == 2
    manifest = Bundle.load(tmp_path / "out" / "onnx-fp32").manifest
    assert manifest.task.value == "segment" and str(painted) in manifest.parity.data


def test_export_refuses_parity_data_that_is_not_a_mask_split(tmp_path):
    checkpoint = block_segmenter_model().save(tmp_path / "blocks.pt")
    (tmp_path / "folder" / "red").mkdir(parents=True)
    result = runner.invoke(app, ["export", str(checkpoint), "-o", str(tmp_path / "out"), "--parity-data",
                                 str(tmp_path / "folder")])
    assert isinstance(result.exception, errors.DataError)
    assert str(result.exception).startswith(f"--parity-data {tmp_path / 'folder'}: ") and "labels.txt" in str(result.exception)
    assert not (tmp_path / "out").exists()
