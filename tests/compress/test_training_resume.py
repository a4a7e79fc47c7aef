"""Training stages checkpoint every completed epoch; a killed run resumes to the same weights; foreign checkpoints are refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgevision.compress import LatencyConfig, PruneConfig, prune
from edgevision.compress.fit import EpochCheckpoint
from edgevision.errors import TrainingError
from edgevision.model import TrainedModel

#: Distils `student` from `teacher` for 3 epochs on one thread (the same arithmetic in every process), optionally
#: checkpointing to / resuming from argv[6], and saves the result to argv[5].
SCRIPT = """
import sys
from pathlib import Path
from edgevision.compress import DistillConfig, distill
from edgevision.compress.fit import EpochCheckpoint
from edgevision.model import TrainedModel

teacher, student = TrainedModel.load(sys.argv[1]), TrainedModel.load(sys.argv[2])
train, val, out, state, resume = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7] == "1"
config = DistillConfig(epochs=3, batch_size=32, seed=3, threads=1, patience=None)
checkpoint = EpochCheckpoint(Path(state), "the same run", resume=resume) if state != "-" else None
model, report = distill(student, teacher, train_data=train, val_data=val, config=config, checkpoint=checkpoint)
model.save(out)
print("resumed after epoch", report.resumed_from_epoch, flush=True)
"""


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(teacher.pt, student.pt): a random MobileNetV3-Small and its half-width pruned copy."""
    from tests.compress.conftest import _random_model

    teacher = _random_model("mobilenet_v3_small")
    student, _ = prune(teacher, config=PruneConfig(channel_ratio=0.5, latency=LatencyConfig(runs=2, warmup=0)))
    root = tmp_path_factory.mktemp("pair")
    return teacher.save(root / "teacher.pt"), student.save(root / "student.pt")


def _command(pair, small_train, tiny_val, out: Path, state: str, resume: bool) -> list[str]:
    teacher, student = pair
    return [sys.executable, "-c", SCRIPT, str(teacher), str(student), str(small_train), str(tiny_val), str(out), state,
            "1" if resume else "0"]


def _completed_epoch(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["epoch"])
    except (FileNotFoundError, RuntimeError, EOFError, KeyError):
        return 0


def test_a_distillation_killed_mid_epoch_resumes_to_the_same_weights(pair, small_train, tiny_val, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    whole = tmp_path / "uninterrupted.pt"
    subprocess.run(_command(pair, small_train, tiny_val, whole, "-", False), check=True, env=environment)

    state, killed = tmp_path / "state.pt", tmp_path / "killed.pt"
    running = subprocess.Popen(_command(pair, small_train, tiny_val, killed, str(state), False), env=environment)
    deadline = time.monotonic() + 600
    while _completed_epoch(state) < 1 and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    running.send_signal(signal.SIGKILL)  # epoch 2 has begun: the kill lands mid-epoch
    assert running.wait() == -signal.SIGKILL and not killed.exists(), "the run must die before it finishes"
    completed = _completed_epoch(state)
    assert 1 <= completed < 3

    resumed = tmp_path / "resumed.pt"
    done = subprocess.run(_command(pair, small_train, tiny_val, resumed, str(state), True), check=True,
                          env=environment, capture_output=True, text=True)
    assert f"resumed after epoch {completed}" in done.stdout, done.stdout
    assert TrainedModel.load(resumed).weights_sha256() == TrainedModel.load(whole).weights_sha256()


def test_a_checkpoint_of_another_run_or_world_size_is_refused_by_name(tmp_path):
    state = EpochCheckpoint(tmp_path / "state.pt", "recipe A")
    state.save({"world_size": 1, "epoch": 1})
    assert not list(tmp_path.glob("*.partial")), "saving is atomic: no partial file is left"
    with pytest.raises(TrainingError, match="made by another run"):
        EpochCheckpoint(state.path, "recipe B", resume=True).load(world_size=1)
    with pytest.raises(TrainingError, match="made by 1 training process.* this run has 2"):
        EpochCheckpoint(state.path, "recipe A", resume=True).load(world_size=2)
    assert EpochCheckpoint(state.path, "recipe A", resume=True).load(world_size=1)["epoch"] == 1
    assert EpochCheckpoint(state.path, "recipe A", resume=False).load(world_size=1) is None  # a fresh run ignores it
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(TrainingError, match="not a readable edgevision training checkpoint"):
        EpochCheckpoint(tmp_path / "junk.pt", "recipe A", resume=True).load(world_size=1)
