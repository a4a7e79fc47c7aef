"""The one training loop behind distillation, plain fine-tuning and pruning's short fine-tunes, for every task.

What differs between tasks and losses is passed in: the trainee (an `nn.Module` whose forward is the
batch loss, see `trainees`), the batches of an epoch, and the validation that scores an epoch (top-1,
or mAP50-95 with mAP50 alongside). The schedule, gradient clipping, best-epoch choice, early stopping,
distributed data parallelism and the per-epoch checkpoint that makes a run resumable live here once.

Under `torchrun` (see `distributed`) the trainee is wrapped in DistributedDataParallel, each rank
trains on its shard of every batch (the data providers shard), losses are summed over ranks, rank 0
validates and broadcasts the scores so every rank takes the same decisions, and rank 0 alone writes
the checkpoint.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import TrainingError
from ..train import EpochCallback
from .distributed import barrier, broadcast, gather, sum_over_ranks, world, wrap

#: The batches of one epoch (1-based) for this rank, so a loop can reshuffle per epoch: epoch → (inputs, targets).
EpochBatches = Callable[[int], Iterable[tuple[Any, Any]]]
#: Scores the student in eval mode on the validation split: metric name → value; `score_key` picks the one that chooses.
Validation = Callable[[Any], dict[str, float]]


@dataclass(frozen=True)
class FitResult:
    """history: per epoch {"epoch", "train_loss", "train_seconds", and the validation's metrics}."""

    history: list[dict[str, float]]
    best_epoch: int
    best_score: float | None
    stopped_early: bool
    resumed_from_epoch: int = 0  # the last epoch a resumed run found completed (0: started fresh)


@dataclass(frozen=True)
class EpochCheckpoint:
    """Where a training stage keeps its state after every completed epoch, and whose state it is.

    `fingerprint` names the run (recipe, inputs, stage): a checkpoint with another fingerprint is
    refused rather than silently continued. With `resume` False any old checkpoint is overwritten.
    """

    path: Path
    fingerprint: str
    resume: bool = False

    def load(self, world_size: int) -> dict[str, Any] | None:
        torch = require("torch", extra="compress", what="PyTorch")
        if not self.resume or not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem for the user
            raise TrainingError(f"Cannot resume from {self.path}: it is not a readable edgevision training checkpoint "
                                f"({type(exc).__name__}). Delete it to start over.") from None
        if state.get("fingerprint") != self.fingerprint:
            raise TrainingError(
                f"Cannot resume from {self.path}: it was made by another run (a different recipe, model, data or "
                "stage). Resume with the same command and recipe, or start over without --resume."
            )
        if state.get("world_size") != world_size:
            raise TrainingError(
                f"Cannot resume from {self.path}: it was made by {state.get('world_size')} training process(es) and "
                f"this run has {world_size}. Resume with the same --nproc-per-node × --nnodes, or start over."
            )
        return state

    def save(self, state: dict[str, Any]) -> None:
        """Atomically: a crash while saving leaves the previous epoch's checkpoint, never half of one."""
        torch = require("torch", extra="compress", what="PyTorch")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        torch.save({**state, "fingerprint": self.fingerprint}, partial)
        os.replace(partial, self.path)


def fit(
    trainee: Any,
    *,
    batches: EpochBatches,
    steps_per_epoch: int,
    validate: Validation | None,
    score_key: str,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    patience: int | None = None,
    clip_grad_norm: float | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> FitResult:
    """AdamW + per-batch cosine decay over the full budget; keeps the best epoch by `score_key` when validating.

    `trainee.student` is what is validated and kept. Early stopping (`patience` epochs without a better
    score) ends the run but not the schedule's shape, so a stopped run and a full run saw the same
    learning rates up to the stop. Without `validate` the last epoch is kept. BatchNorm momentum is
    raised to 0.1 while training (short runs would barely move MobileNet's 0.01 running statistics).
    """
    torch = require("torch", extra="compress", what="PyTorch")

    here = world()
    student = trainee.student
    model = wrap(trainee)
    parameters = [p for p in trainee.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs * steps_per_epoch, 1))
    run = _RunState()
    # rank 0 reads (the checkpoint lives on its machine) and every rank continues from the same state
    saved = broadcast(checkpoint.load(here.size) if here.main else None) if checkpoint is not None else None
    if saved is not None:
        trainee.load_state_dict(saved["trainee"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"][here.rank])
        run = _RunState.from_saved(saved)
    resumed_from = run.epoch
    with fast_batchnorm(student):
        for epoch in range(run.epoch + 1, epochs + 1):
            if run.stopped_early:
                break
            model.train()
            started, total, seen = time.perf_counter(), 0.0, 0
            for inputs, targets in batches(epoch):
                optimizer.zero_grad(set_to_none=True)
                batch_loss = model(inputs, targets)
                batch_loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
                optimizer.step()
                scheduler.step()
                total += float(batch_loss.detach()) * len(targets)
                seen += len(targets)
            total, seen = sum_over_ranks(total, seen)
            train_loss, seconds = total / max(seen, 1), time.perf_counter() - started
            model.eval()
            metrics = broadcast(validate(student) if here.main else None) if validate is not None else {}
            run.epoch = epoch
            run.history.append({"epoch": epoch, "train_loss": train_loss, "train_seconds": seconds, **metrics})
            score = metrics.get(score_key, float("nan"))
            if on_epoch and here.main:
                on_epoch(epoch, epochs, train_loss, score)
            run.judge(epoch, score if validate is not None else None, student, patience=patience, last=epochs)
            if checkpoint is not None:
                rng = gather(torch.get_rng_state())
                if here.main:
                    checkpoint.save({"world_size": here.size, "trainee": trainee.state_dict(),
                                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                     "rng": rng, **run.to_saved()})
                barrier()
    if run.best_state is not None:
        student.load_state_dict(run.best_state)
    student.eval()
    return FitResult(history=run.history, best_epoch=run.best_epoch, best_score=run.best,
                     stopped_early=run.stopped_early, resumed_from_epoch=resumed_from)


@dataclass
class _RunState:
    """The loop's bookkeeping, all of it saved in the checkpoint."""

    epoch: int = 0  # the last completed epoch
    best: float | None = None
    best_state: dict[str, Any] | None = None
    best_epoch: int = 0
    stale: int = 0
    stopped_early: bool = False
    history: list[dict[str, float]] | None = None

    def __post_init__(self) -> None:
        self.history = [] if self.history is None else self.history

    def judge(self, epoch: int, score: float | None, student: Any, *, patience: int | None, last: int) -> None:
        """Keep the epoch if it scored best; stop after `patience` epochs without a better score."""
        if score is None:
            self.best_epoch = epoch
            return
        if self.best is None or score > self.best:
            self.best, self.best_state, self.best_epoch, self.stale = score, copy.deepcopy(student.state_dict()), epoch, 0
            return
        self.stale += 1
        if patience is not None and self.stale >= patience and epoch < last:
            self.stopped_early = True

    def to_saved(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "best": self.best, "best_state": self.best_state, "best_epoch": self.best_epoch,
                "stale": self.stale, "stopped_early": self.stopped_early, "history": self.history}

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> _RunState:
        return cls(**{key: saved[key] for key in ("epoch", "best", "best_state", "best_epoch", "stale", "stopped_early",
                                                   "history")})


@contextmanager
def fast_batchnorm(module: Any) -> Iterator[None]:
    """BatchNorm momentum at least 0.1 inside the block, restored after."""
    torch = require("torch", extra="compress", what="PyTorch")

    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        if layer.momentum is not None:
            layer.momentum = max(layer.momentum, 0.1)
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` (None: unchanged) inside the block."""
    torch = require("torch", extra="compress", what="PyTorch")

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
