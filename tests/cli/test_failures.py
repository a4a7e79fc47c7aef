"""A failed command leaves nothing behind, and its error names the problem (issue 11, point 7).

Every output path below lies under a folder that does not exist yet, so "nothing behind" means
the top new folder is gone after the failure, not only the leaf.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgevision import errors
from edgevision.cli import app
from edgevision.cli.outputs import removes_outputs_on_failure

runner = CliRunner()


def _fails(args: list[str], error: type[Exception], *words: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, error), (result.exception, result.output)
    message = str(result.exception)
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def broken_folders(tmp_path: Path) -> dict[str, Path]:
    """An empty folder, one with a corrupt image, one with a stray non-image file."""
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    (corrupt / "3").mkdir(parents=True)
    (corrupt / "3" / "a.png").write_bytes(b"not a png")
    stray = tmp_path / "stray"
    (stray / "3").mkdir(parents=True)
    (stray / "3" / "notes.txt").write_text("hello")
    return {"empty": empty, "corrupt": corrupt, "stray": stray}


@pytest.mark.parametrize(("case", "words"), [
    ("empty", ("--parity-data", "no class sub-folders")),
    ("corrupt", ("--parity-data", "Cannot decode image", "a.png")),
    ("stray", ("--parity-data", "non-image", "notes.txt")),
])
def test_export_with_broken_parity_data_writes_nothing(checkpoint, broken_folders, tmp_path: Path, case, words) -> None:
    out = tmp_path / "new" / "bundles"
    _fails(["export", str(checkpoint), "-o", str(out), "-f", "onnx", "--parity-data", str(broken_folders[case])],
           errors.DataError, *words)
    assert not (tmp_path / "new").exists()


def test_export_refuses_what_the_input_cannot_reach(checkpoint, tmp_path: Path) -> None:
    out = tmp_path / "new" / "bundles"
    _fails(["export", str(checkpoint), "-o", str(out), "-f", "onnx,tflite", "-p", "int8"], errors.ConfigError,
           "int8", "calibration")
    onnx_file = tmp_path / "model.onnx"
    onnx_file.write_bytes(b"\x08\x07")
    _fails(["export", str(onnx_file), "-o", str(out), "-f", "tflite"], errors.ConfigError, "torch checkpoint",
           "edgevision compress")
    _fails(["export", str(checkpoint), "-o", str(out), "-f", "onnx,tflit"], errors.EdgeVisionError, "tflit")
    assert not (tmp_path / "new").exists()


def test_failed_export_is_one_line_exit_2_and_leaves_no_folder(checkpoint, broken_folders, tmp_path: Path) -> None:
    out = tmp_path / "new" / "bundles"
    done = subprocess.run(
        [sys.executable, "-m", "edgevision", "export", str(checkpoint), "-o", str(out), "--parity-data",
         str(broken_folders["empty"])], capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--parity-data" in done.stderr and "no class sub-folders" in done.stderr
    assert not (tmp_path / "new").exists()


def test_compress_with_broken_data_writes_nothing(checkpoint, broken_folders, tmp_path: Path) -> None:
    out = tmp_path / "new" / "compressed"
    _fails(["compress", str(checkpoint), "--data", str(broken_folders["empty"]), "-o", str(out)], errors.DataError,
           "train/ and val/")
    _fails(["compress", str(checkpoint), "--data", str(tmp_path / "missing"), "-o", str(out)], errors.DataError,
           "missing")
    assert not (tmp_path / "new").exists()


def test_bench_with_broken_data_writes_no_report(onnx_bundle, broken_folders, tmp_path: Path) -> None:
    out = tmp_path / "new" / "report"
    result = runner.invoke(app, ["bench", str(onnx_bundle.path), "-n", "5", "--warmup", "1", "--data",
                                 str(broken_folders["corrupt"]), "-o", str(out)])
    assert result.exit_code != 0 and isinstance(result.exception, errors.EdgeVisionError)
    assert "a.png" in str(result.exception) or "corrupt" in str(result.exception)
    assert not (tmp_path / "new").exists()


def test_train_demo_and_demo_check_their_options_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "new" / "demo"
    _fails(["train-demo", "-o", str(out), "--arch", "resnet1"], errors.EdgeVisionError, "resnet1", "resnet18")
    _fails(["train-demo", "-o", str(out), "--size", "4"], errors.ConfigError, "input_size 4")
    _fails(["demo", "-o", str(out), "--formats", "onnx,tflit"], errors.EdgeVisionError, "tflit")
    _fails(["demo", "-o", str(out), "--precisions", "fp33"], errors.EdgeVisionError, "fp33")
    assert not (tmp_path / "new").exists()


def test_run_removes_its_sink_files_when_the_source_fails(onnx_bundle, tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"this is no video")
    results = tmp_path / "new" / "results.jsonl"
    result = runner.invoke(app, ["run", str(onnx_bundle.path), "--source", str(clip), "--jsonl", str(results),
                                 "--no-display", "-n", "3"])
    assert result.exit_code != 0, result.output
    assert not (tmp_path / "new").exists()


def test_the_guard_removes_only_what_the_command_created(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()

    @removes_outputs_on_failure("out")
    def command(out: Path) -> None:
        (out / "half").mkdir(parents=True)
        raise errors.ParityError("engine disagrees")

    with pytest.raises(errors.ParityError):
        command(tmp_path / "a" / "b" / "out")
    assert not (tmp_path / "a").exists()
    with pytest.raises(errors.ParityError):
        command(existing)
    assert (existing / "half").is_dir()  # a folder the user had is never removed
