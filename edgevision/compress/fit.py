"""The one training loop behind distillation, plain fine-tuning and pruning's short fine-tunes, for every task.

What differs between a classifier and a detector is passed in: the batch loss, the batches of an
epoch, and the validation that scores an epoch (top-1, or mAP50-95 with mAP50 alongside). The
schedule, gradient clipping, best-epoch choice and early stopping live here once.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._optional import require
from ..train import EpochCallback

#: A batch loss: (inputs, targets) → scalar tensor with gradients.
BatchLoss = Callable[[Any, Any], Any]
#: The batches of one epoch (1-based), so a loop can reshuffle per epoch: epoch → (inputs, targets) pairs.
EpochBatches = Callable[[int], Iterable[tuple[Any, Any]]]
#: Scores the module in eval mode on the validation split: metric name → value; `score_key` picks the one that chooses.
Validation = Callable[[Any], dict[str, float]]


@dataclass(frozen=True)
class FitResult:
    """history: per epoch {"epoch", "train_loss", "train_seconds", and the validation's metrics}."""

    history: list[dict[str, float]]
    best_epoch: int
    best_score: float | None
    stopped_early: bool


def fit(
    module: Any,
    *,
    loss: BatchLoss,
    batches: EpochBatches,
    steps_per_epoch: int,
    validate: Validation | None,
    score_key: str,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    patience: int | None = None,
    clip_grad_norm: float | None = None,
    extra_parameters: list[Any] | tuple[Any, ...] = (),
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """AdamW + per-batch cosine decay over the full budget; keeps the best epoch by `score_key` when validating.

    Early stopping (`patience` epochs without a better score) ends the run but not the schedule's
    shape, so a stopped run and a full run saw the same learning rates up to the stop. Without
    `validate` the last epoch is kept. BatchNorm momentum is raised to 0.1 while training (short runs
    would barely move MobileNet's 0.01 running statistics) and restored.
    """
    torch = require("torch", extra="compress", what="PyTorch")

    parameters = [p for p in module.parameters() if p.requires_grad] + list(extra_parameters)
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs * steps_per_epoch, 1))
    best, best_state, best_epoch, stale, history, stopped_early = None, None, 0, 0, [], False
    with fast_batchnorm(module):
        for epoch in range(1, epochs + 1):
            module.train()
            started, total, seen = time.perf_counter(), 0.0, 0
            for inputs, targets in batches(epoch):
                optimizer.zero_grad(set_to_none=True)
                batch_loss = loss(inputs, targets)
                batch_loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
                optimizer.step()
                scheduler.step()
                total += float(batch_loss.detach()) * len(targets)
                seen += len(targets)
            train_loss, seconds = total / max(seen, 1), time.perf_counter() - started
            module.eval()
            metrics = validate(module) if validate is not None else {}
            history.append({"epoch": epoch, "train_loss": train_loss, "train_seconds": seconds, **metrics})
            score = metrics.get(score_key, float("nan"))
            if on_epoch:
                on_epoch(epoch, epochs, train_loss, score)
            if validate is None:
                best_epoch = epoch
                continue
            if best is None or score > best:
                best, best_state, best_epoch, stale = score, copy.deepcopy(module.state_dict()), epoch, 0
            else:
                stale += 1
                if patience is not None and stale >= patience and epoch < epochs:
                    stopped_early = True
                    break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return FitResult(history=history, best_epoch=best_epoch, best_score=best, stopped_early=stopped_early)


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
