"""`edgevision compress --nproc-per-node 2`: distillation on two CPU processes (gloo) through torch.distributed.run.

The two-process run trains one model with DistributedDataParallel (each rank half of every batch) and
must reach the single-process accuracy within `TOLERANCE`; rank 0 alone writes the output.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

#: Test top-1 (360 images) of the distilled model, two processes vs one. They differ by design: each rank's BatchNorm
#: sees half of each batch, and the augmentation draws from per-rank seeds; 3 points is ≈ 11 images.
TOLERANCE = 0.03
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _command(checkpoint: Path, data: Path, out: Path, *extra: str, epochs: int = 2) -> list[str]:
    return [sys.executable, "-m", "edgevision", "compress", str(checkpoint), "--data", str(data), "-o", str(out),
            "--prune", "0.5", "--distill", "--epochs", str(epochs), "--export", "onnx", "--quantize", "fp32",
            "--max-accuracy-drop", "0.5", *extra]


ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def _compress(checkpoint: Path, data: Path, out: Path, *extra: str, epochs: int = 2) -> subprocess.CompletedProcess:
    done = subprocess.run(_command(checkpoint, data, out, *extra, epochs=epochs), capture_output=True, text=True,
                          env=ENVIRONMENT, cwd=out.parent, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _distilled(out: Path) -> float:
    report = json.loads((out / "compress_report.json").read_text())
    return next(s["accuracy"] for s in report["stages"] if s["stage"] == "distilled")


@pytest.mark.slow
def test_two_processes_reach_the_single_process_accuracy_and_rank_zero_alone_writes(checkpoint, digits, tmp_path):
    data = digits.train.parent
    single, double = tmp_path / "one-process", tmp_path / "two-processes"
    _compress(checkpoint, data, single)
    done = _compress(checkpoint, data, double, "--nproc-per-node", "2", "--master-port", str(_free_port()))

    assert "training on 2 process(es) × 1 machine(s) through torch.distributed.run" in done.stdout
    assert abs(_distilled(double) - _distilled(single)) <= TOLERANCE, (_distilled(double), _distilled(single))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one-process", "two-processes"], \
        "one output each, no rank's temp dir or training state left behind"
    assert (double / "bundles").is_dir() and (double / "model.pt").is_file()
    report = json.loads((double / "compress_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["original", "pruned", "distilled"]


def test_a_port_in_use_and_a_resume_with_nothing_to_resume_are_one_line_each(checkpoint, digits, tmp_path):
    from typer.testing import CliRunner

    from edgevision.cli import app
    from edgevision.errors import ConfigError

    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["compress", str(checkpoint), "--data", str(digits.train.parent), "-o",
                                          str(tmp_path / "out"), "--prune", "0.5", "--distill", "--nproc-per-node", "2",
                                          "--master-port", str(port)])
    assert isinstance(result.exception, ConfigError) and f"Port {port} is already in use" in str(result.exception)
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(app, ["compress", str(checkpoint), "--data", str(digits.train.parent), "-o",
                                      str(tmp_path / "out"), "--prune", "0.5", "--distill", "--resume"])
    assert isinstance(result.exception, ConfigError) and "Nothing to resume" in str(result.exception)
    assert not (tmp_path / "out").exists()


def _descendants(root: int) -> list[int]:
    """Every live process below `root` (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _rank_one(root: int) -> int | None:
    for pid in _descendants(root):
        try:
            if b"RANK=1\0" in (Path("/proc") / str(pid) / "environ").read_bytes().replace(b"LOCAL_RANK", b"L"):
                return pid
        except OSError:
            continue
    return None


def _completed_epoch(state: Path) -> int:
    import torch

    best = 0
    for file in state.glob("*.pt"):
        try:
            best = max(best, int(torch.load(file, weights_only=True)["epoch"]))
        except (FileNotFoundError, RuntimeError, EOFError, KeyError):
            continue
    return best


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank to kill through Linux /proc")
def test_a_rank_that_dies_is_one_error_and_the_run_resumes_on_two_processes(checkpoint, digits, tmp_path):
    data, out = digits.train.parent, tmp_path / "out"
    state = Path(f"{out}.training")
    port = str(_free_port())
    running = subprocess.Popen(_command(checkpoint, data, out, "--nproc-per-node", "2", "--master-port", port, epochs=3),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENVIRONMENT,
                               cwd=tmp_path)
    deadline = time.monotonic() + 900
    while _completed_epoch(state) < 1 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = _rank_one(running.pid)
    assert victim is not None and running.poll() is None, "rank 1 must be training when it is killed"
    os.kill(victim, signal.SIGKILL)  # a lost process (or node) in the middle of distillation
    output, _ = running.communicate(timeout=300)

    assert running.returncode == 2, output[-3000:]
    assert "A training process failed under torch.distributed.run" in output and "--resume" in output
    assert not out.exists(), "no half-written output"
    assert _completed_epoch(state) >= 1, "the completed epochs are kept for --resume"

    done = _compress(checkpoint, data, out, "--nproc-per-node", "2", "--master-port", str(_free_port()), "--resume",
                     epochs=3)
    assert "resum" in done.stdout.lower(), done.stdout[-2000:]
    assert (out / "bundles").is_dir() and not state.exists()
    report = json.loads((out / "compress_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["original", "pruned", "distilled"]
