"""The README's front door works: every Python block runs, in order, and every cheap CLI line runs.

They run against a tiny model and data made here, laid out where the README expects them
(runs/demo/model.pt and runs/demo/data/{train,val,test} in a temporary working folder). The
one substitution: there is no camera here, so `open_source("0")` reads the digits demo clip.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgevision import errors
from edgevision.cli import app
from tests.stream.videos import digit_video  # noqa: F401 - a shared session fixture

README = Path(__file__).resolve().parents[1] / "README.md"
CAMERA = 'open_source("0")'

#: CLI-table commands run here, with the placeholders each one needs filled in (applied in order).
CHEAP_COMMANDS: dict[str, list[tuple[str, str]]] = {
    "export": [("MODEL.pt", "runs/demo/model.pt"), ("-o OUT", "-o bundles/cli"),
               ("-f onnx,openvino,tflite -p fp32,fp16", "-f onnx -p fp32"),  # one format: seconds, not minutes
               ("VAL", "runs/demo/data/val")],
    "info": [("BUNDLE", "bundles/cli/onnx-fp32")],
    "bench": [("BUNDLE...", "bundles/cli/onnx-fp32"), ("RUNTIMES", "onnxruntime"), ("TEST", "runs/demo/data/test"),
              ("--split-name NAME", "--split-name test"),
              ("-o OUT", "-o bench-report")],
    "devices": [],
    "run": [("BUNDLE", "bundles/cli/onnx-fp32"), (r"0\|video.mp4\|rtsp://…\|gst:…", "{video}")],
}
#: Flags added so a run takes seconds (the table shows the defaults a user gets).
QUICK_FLAGS = {"bench": ["-n", "5", "--warmup", "1"], "run": ["--no-display", "-n", "12"]}
#: CLI-table commands not run here, and why.
SLOW_COMMANDS = {"train-demo": "trains a model (minutes)", "demo": "trains, exports every format and benches (minutes)",
                 "compress": "prunes, distils, quantises and benches (minutes; tests/cli/test_compress_cli.py runs it, and "
                             "tests/compress/test_distributed.py with --nproc-per-node)"}
#: Python blocks (by a line they contain) whose stand-in model edgevision rightly refuses, and the errors allowed.
#: The stand-in detector trained one epoch: its boxes are near-ties of noise, so its INT8 boxes disagree with its float
#: ones and parity refuses the bundle (a trained detector passes: `make demo`, tests/compress/test_detect_int8.py).
REFUSED_ON_STAND_INS: dict[str, tuple[type[Exception], ...]] = {
    'quantize(detector, "bundles/detector-openvino-int8"': (errors.ParityError, errors.AccuracyBudgetError),
}
#: ```bash lines that are not edgevision commands: installs, make targets, the test suite.
NOT_CLI = ("make ", "python3 -m venv", ".venv/bin/pip ", ".venv/bin/python -m pytest")


def code_blocks(language: str) -> list[tuple[int, str]]:
    """(first line number, code) of every ```language block of the README, in order."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1):
        if current is None and line.strip() == f"```{language}":
            current, start = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def table_commands() -> list[str]:
    """The commands of the README's CLI table (first cell of each `edgevision …` row)."""
    return re.findall(r"^\| `(edgevision [^`]+)` \|", README.read_text(encoding="utf-8"), flags=re.MULTILINE)


@pytest.fixture(scope="module")
def demo_folder(trained_model, digits, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working folder laid out as after `make demo`'s training step, and the cwd while the tests run."""
    root = tmp_path_factory.mktemp("readme")
    (root / "runs" / "demo" / "data").mkdir(parents=True)
    trained_model.save(root / "runs" / "demo" / "model.pt")
    for part in ("train", "val", "test"):
        (root / "runs" / "demo" / "data" / part).symlink_to(getattr(digits, part), target_is_directory=True)
    _briefly_trained_detector(root / "runs" / "demo" / "detect")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        yield root


def _briefly_trained_detector(folder: Path) -> None:
    """runs/demo/detect/{model.pt,data/} as `edgevision train-demo --task detect` lays them out (1 epoch, 8-image splits),
    its threshold lowered so val shows boxes (tests/stand_in_detector.py says why)."""
    from edgevision.data.detection import make_detection_dataset
    from edgevision.model import TrainedModel
    from edgevision.train_detect import train_detector
    from tests.stand_in_detector import showing_best_boxes

    splits = make_detection_dataset(folder / "data", counts=(16, 8, 8))
    train_detector(splits, folder / "model.pt", epochs=1, threads=2)
    showing_best_boxes(TrainedModel.load(folder / "model.pt"), splits.val).save(folder / "model.pt")


def test_the_readme_has_the_blocks_this_test_runs() -> None:
    assert len(code_blocks("python")) >= 3
    assert sum(CAMERA in code for _, code in code_blocks("python")) == 1
    assert {c.split()[1] for c in table_commands()} == set(CHEAP_COMMANDS) | set(SLOW_COMMANDS)


def test_every_python_block_runs_in_order(demo_folder: Path, digit_video: Path) -> None:  # noqa: F811
    namespace: dict[str, object] = {"__name__": "readme"}
    for line, code in code_blocks("python"):
        if CAMERA in code:  # no camera here: the demo clip stands in for camera 0
            code = code.replace(CAMERA, f"open_source({str(digit_video)!r})")
        refusals = next((errors for marker, errors in REFUSED_ON_STAND_INS.items() if marker in code), ())
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)  # noqa: S102 - running the README is the test
        except refusals:
            pass  # the documented call ran and edgevision refused the stand-in, as it must (see REFUSED_ON_STAND_INS)
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"README.md's Python block at line {line} raised {type(exc).__name__}: {exc}")
    assert (demo_folder / "bundles" / "onnx-fp16" / "edgevision.json").is_file()
    summary = namespace["summary"]
    assert summary.frames > 0  # type: ignore[attr-defined]
    assert len((demo_folder / "out.jsonl").read_text().splitlines()) == summary.frames  # type: ignore[attr-defined]
    assert len(namespace["report"].rows) == 4  # type: ignore[attr-defined] # 2 bundles × threads (1, 2)


def test_every_cheap_cli_line_runs(demo_folder: Path, digit_video: Path) -> None:  # noqa: F811
    for line, code in code_blocks("bash"):
        for command in (c.split("#")[0].strip() for c in code.replace("\\\n", " ").splitlines()):
            if command and not command.startswith(NOT_CLI):
                assert command.startswith("edgevision "), f"README.md:{line}: classify {command!r} in this test"
                if command.split()[1] in SLOW_COMMANDS:  # minutes of training, or other machines: tested elsewhere
                    continue
                _run(command, [])
    ran = []
    for command in table_commands():
        name = command.split()[1]
        if name in SLOW_COMMANDS:
            continue
        for placeholder, value in CHEAP_COMMANDS[name]:
            assert placeholder in command, f"the README's `{command}` no longer has {placeholder!r}"
            command = command.replace(placeholder, value.format(video=digit_video))
        _run(re.sub(r"\[([^\]]*)\]", r"\1", command), QUICK_FLAGS.get(name, []))  # optional flags: all given
        ran.append(name)
    assert ran == ["export", "info", "bench", "devices", "run"]
    assert (demo_folder / "bench-report" / "bench.json").is_file()


def _run(command: str, extra: list[str]) -> None:
    args = shlex.split(command)[1:] + extra
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, f"`edgevision {' '.join(args)}` failed: {result.exception!r}\n{result.output}"


@pytest.mark.parametrize("first", ["function", "submodule"])
def test_export_and_bench_are_the_functions_in_any_import_order(first: str) -> None:
    """`from edgevision.export import ParityConfig` must not turn `edgevision.export` into a module."""
    steps = {
        "function": "edgevision.export; edgevision.bench",
        "submodule": "from edgevision.export import ParityConfig; from edgevision.bench import BenchConfig",
    }
    other = steps["submodule" if first == "function" else "function"]
    code = (
        f"import edgevision, inspect, sys; {steps[first]}; {other}; "
        "import edgevision.export.parity, edgevision.bench.report; from edgevision import export, bench; "
        "assert inspect.isfunction(edgevision.export) and edgevision.export is export, edgevision.export; "
        "assert inspect.isfunction(edgevision.bench) and edgevision.bench is bench, edgevision.bench; "
        "assert sys.modules['edgevision.export'].ParityConfig is edgevision.ParityConfig"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
