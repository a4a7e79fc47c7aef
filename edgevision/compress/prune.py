"""Structured (channel) pruning with torch-pruning's dependency graph.

Channels are physically removed (Conv/BN/Linear layers shrink, residual groups stay consistent),
so the pruned model is smaller and faster in every engine, not just sparser. Pruning is local:
every prunable channel group keeps the same fraction of its channels, rounded down to `round_to`
but never fewer than `round_to` (groups no wider than that stay whole). Channel counts therefore
do not depend on the importance criterion, which lets a MAC target be solved for.

With `target_macs_ratio`, the channel fraction is found by bisection on throwaway copies of
the model (each pruned one-shot and counted with ``tp.utils.count_ops_and_params``): the kept
fraction is the largest one whose MACs are ≤ the target, so the result lands at or just below
it. The real model is then pruned towards that fraction in `steps` linear steps (the last step
reaches it exactly), with `finetune_epochs_per_step` epochs of label fine-tuning between steps.
Given `train_data`, BatchNorm statistics are re-estimated after every step (cheap, and it is most
of what a one-shot prune loses). Recovering accuracy after the last step is `distill`'s job (or its fine-tune mode).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._compat.enum import StrEnum
from .._optional import require
from ..errors import CompressionError, ConfigError, did_you_mean
from ..model import TrainedModel
from ..train import evaluate_torch
from .measure import LatencyConfig, ModelStats, count_macs_params, measure

#: Called after each pruning step: (step, steps, MACs after / MACs before).
ProgressCallback = Callable[[int, int, float], None]

#: The largest pruning ratio the MAC-target search tries (layers still keep ≥ round_to channels).
MAX_PRUNING_RATIO = 0.95
_SEARCH_TOLERANCE = 0.005
_SEARCH_BRACKET = 0.1


class PruneImportance(StrEnum):
    """How channels are ranked: weight magnitude (L1/L2 norm) or first-order Taylor (needs data)."""

    L1 = "l1"
    L2 = "l2"
    TAYLOR = "taylor"


@dataclass(frozen=True, kw_only=True)
class PruneConfig:
    """Give exactly one target: `target_macs_ratio` (fraction of MACs to keep) or `channel_ratio`
    (fraction of each layer's channels to keep; torch-pruning's pruning_ratio is 1 − this)."""

    target_macs_ratio: float | None = None
    channel_ratio: float | None = None
    importance: PruneImportance = PruneImportance.L1
    ignored_layers: tuple[str, ...] = ()
    steps: int = 1
    finetune_epochs_per_step: int = 0
    round_to: int | None = 8
    taylor_batches: int = 4
    recalibration_batches: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    latency: LatencyConfig = LatencyConfig()

    def __post_init__(self) -> None:
        if (self.target_macs_ratio is None) == (self.channel_ratio is None):
            raise ConfigError("Give exactly one pruning target: target_macs_ratio=0.5 (keep 50 % of MACs) or channel_ratio=0.5.")
        for name in ("target_macs_ratio", "channel_ratio"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ConfigError(f"{name} is the fraction to keep and must lie strictly between 0 and 1, got {value}.")
        if not isinstance(self.importance, PruneImportance):
            valid = [m.value for m in PruneImportance]
            if str(self.importance).lower() not in valid:
                raise ConfigError(
                    f"Unknown importance {self.importance!r}. Choose from: {', '.join(valid)}."
                    f"{did_you_mean(str(self.importance).lower(), valid)}"
                )
            object.__setattr__(self, "importance", PruneImportance(str(self.importance).lower()))
        if isinstance(self.ignored_layers, str) or not all(isinstance(n, str) for n in self.ignored_layers):
            raise ConfigError("ignored_layers must be a tuple of module names, e.g. ('layer4.1.conv2',).")
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}.")
        if self.finetune_epochs_per_step < 0:
            raise ConfigError(f"finetune_epochs_per_step must be 0 or more, got {self.finetune_epochs_per_step}.")
        if self.finetune_epochs_per_step and self.steps == 1:
            raise ConfigError(
                "finetune_epochs_per_step fine-tunes between pruning steps, and steps=1 has none: "
                "set steps ≥ 2, or recover after pruning with edgevision.compress.distill."
            )
        if self.round_to is not None and self.round_to < 1:
            raise ConfigError(f"round_to must be at least 1 (or None), got {self.round_to}.")
        if self.taylor_batches < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ConfigError("taylor_batches and batch_size must be at least 1 and learning_rate positive.")
        if self.recalibration_batches < 0:
            raise ConfigError(f"recalibration_batches must be 0 (off) or more, got {self.recalibration_batches}.")


@dataclass(frozen=True, kw_only=True)
class PruneReport:
    """Before/after statistics; accuracies are top-1 on val_data (None when none was given)."""

    before: ModelStats
    after: ModelStats
    channel_ratio: float  # fraction of each prunable layer's channels kept (before rounding)
    target_macs_ratio: float | None
    importance: PruneImportance
    steps: int
    accuracy_before: float | None
    accuracy_after: float | None
    seconds: float

    def __post_init__(self) -> None:
        if not 0.0 < self.channel_ratio < 1.0:
            raise ValueError(f"PruneReport.channel_ratio must lie in (0, 1), got {self.channel_ratio}.")

    @property
    def macs_ratio(self) -> float:
        return self.after.macs / self.before.macs

    @property
    def params_ratio(self) -> float:
        return self.after.params / self.before.params

    @property
    def speedup(self) -> float:
        return self.before.latency_ms / self.after.latency_ms

    def describe(self) -> str:
        accuracy = (
            f", val accuracy {self.accuracy_before:.4f} → {self.accuracy_after:.4f}"
            if self.accuracy_before is not None and self.accuracy_after is not None else ""
        )
        return (
            f"{self.importance.value} structured pruning, {self.channel_ratio:.1%} of channels kept, {self.steps} step(s): "
            f"MACs {self.before.macs / 1e6:.2f}M → {self.after.macs / 1e6:.2f}M ({self.macs_ratio:.3f}×), "
            f"params {self.before.params / 1e6:.3f}M → {self.after.params / 1e6:.3f}M, "
            f"torch latency {self.before.latency_ms:.2f} → {self.after.latency_ms:.2f} ms{accuracy}"
        )


def prune(
    model: TrainedModel,
    *,
    config: PruneConfig,
    train_data: str | Path | None = None,
    val_data: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[TrainedModel, PruneReport]:
    """Prune a copy of `model` (the input is not modified) and measure what changed.

    `train_data` (an ImageFolder) is needed for Taylor importance and for fine-tuning between
    steps; `val_data` adds accuracy before/after to the report.
    """
    torch = require("torch", extra="compress", what="PyTorch")
    from .distill import cross_entropy_loss, make_loaders, train_student

    needs_train = config.importance is PruneImportance.TAYLOR or config.finetune_epochs_per_step > 0
    if needs_train and train_data is None:
        why = "Taylor importance" if config.importance is PruneImportance.TAYLOR else "fine-tuning between steps"
        raise ConfigError(f"{why} needs train_data: pass an ImageFolder path (root/<label>/<image>).")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train_loader, val_loader = make_loaders(model, train_data, val_data, batch_size=config.batch_size, seed=config.seed)
    module = copy.deepcopy(model.module).eval()
    protected = _protected_layers(module, config.ignored_layers)
    before = measure(model, latency=config.latency)
    accuracy_before = evaluate_torch(model.module, val_loader) if val_loader is not None else None

    plan = _PrunePlan.of(module, protected, model.input_size, round_to=config.round_to)
    if config.channel_ratio is not None:
        keep = config.channel_ratio
    else:
        keep = _solve_channel_ratio(plan, config, config.target_macs_ratio, before.macs)
    pruner = plan.pruner(config, pruning_ratio=1.0 - keep, importance=config.importance, steps=config.steps)
    for step in range(1, config.steps + 1):
        if config.importance is PruneImportance.TAYLOR:
            _accumulate_gradients(module, train_loader, batches=config.taylor_batches)
        pruner.step()
        module.zero_grad(set_to_none=True)
        if train_loader is not None and config.recalibration_batches:
            _recalibrate_batchnorm(module, train_loader, batches=config.recalibration_batches)
        if step < config.steps and config.finetune_epochs_per_step:
            train_student(
                module, loss=cross_entropy_loss(module), train_loader=train_loader, val_loader=val_loader,
                epochs=config.finetune_epochs_per_step, learning_rate=config.learning_rate, weight_decay=5e-4,
            )
        module.eval()
        if on_progress:
            on_progress(step, config.steps, count_macs_params(module, model.input_size)[0] / before.macs)

    pruned = TrainedModel(
        module=module, labels=list(model.labels), preprocess=model.preprocess,
        architecture=model.architecture, name=model.name, notes=dict(model.notes),
    )
    report = PruneReport(
        before=before, after=measure(pruned, latency=config.latency), channel_ratio=keep,
        target_macs_ratio=config.target_macs_ratio, importance=config.importance, steps=config.steps,
        accuracy_before=accuracy_before,
        accuracy_after=evaluate_torch(module, val_loader) if val_loader is not None else None,
        seconds=time.perf_counter() - started,
    )
    kept = ", ".join((*config.ignored_layers, classifier_name(module)))
    pruned.notes["prune"] = f"{report.describe()}; output channels kept whole: {kept}"
    return pruned, report


def classifier_name(module: Any) -> str:
    """The output layer, always left unpruned: the last nn.Linear (or, without one, the last Conv2d)."""
    torch = require("torch", extra="compress", what="PyTorch")

    for kind in (torch.nn.Linear, torch.nn.Conv2d):
        names = [name for name, layer in module.named_modules() if isinstance(layer, kind)]
        if names:
            return names[-1]
    raise CompressionError("The model has no Linear or Conv2d layer to prune.")


def _protected_layers(module: Any, ignored: tuple[str, ...]) -> list[Any]:
    named = dict(module.named_modules())
    candidates = [name for name in named if name]
    for name in ignored:
        if name not in named or not name:
            raise ConfigError(f"ignored layer {name!r} is not a module of the model.{did_you_mean(name, candidates)}")
    return [named[name] for name in (*ignored, classifier_name(module))]


@dataclass(frozen=True)
class _PrunePlan:
    """A module, its protected layers, and the width of every prunable channel group (by root layer).

    torch-pruning skips a group it would empty, which makes MACs jump back up as the ratio grows;
    each group's ratio is therefore capped so it keeps at least `round_to` channels.
    """

    module: Any
    protected: list[Any]
    widths: list[tuple[Any, int]]
    input_size: tuple[int, int]
    round_to: int | None

    @classmethod
    def of(cls, module: Any, protected: list[Any], input_size: tuple[int, int], *, round_to: int | None) -> _PrunePlan:
        torch = require("torch", extra="compress", what="PyTorch")
        tp = require("torch_pruning", extra="compress", what="torch-pruning")

        try:
            graph = tp.DependencyGraph().build_dependency(module, example_inputs=torch.zeros(1, 3, *input_size))
        except Exception as exc:  # noqa: BLE001 - tracing can fail in many ways
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CompressionError(f"torch-pruning could not trace the model's dependency graph: {first}") from exc
        ignored = [layer for root in protected for layer in root.modules()]
        roots = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_LSTM)
        widths = [
            (group[0][0].target.module, graph.get_out_channels(group[0][0].target.module))
            for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots)
        ]
        if not any(width > (round_to or 1) for _, width in widths):
            raise CompressionError(
                f"No prunable layer is wider than round_to={round_to}: everything is ignored or already minimal."
            )
        return cls(module, protected, widths, input_size, round_to)

    def on_copy(self) -> _PrunePlan:
        """The same plan on a deep copy of the module (for trial pruning)."""
        trial = copy.deepcopy(self.module)
        by_id = dict(zip(map(id, self.module.modules()), trial.modules(), strict=True))
        return _PrunePlan(
            trial, [by_id[id(layer)] for layer in self.protected],
            [(by_id[id(root)], width) for root, width in self.widths], self.input_size, self.round_to,
        )

    def pruner(self, config: PruneConfig, *, pruning_ratio: float, importance: PruneImportance | None, steps: int) -> Any:
        """A local BasePruner; `importance=None` ranks at random (for trials where only counts matter)."""
        torch = require("torch", extra="compress", what="PyTorch")
        tp = require("torch_pruning", extra="compress", what="torch-pruning")

        unit = self.round_to or 1
        caps = {
            root: 1.0 - (unit + 1e-6) / width
            for root, width in self.widths
            if width > unit and pruning_ratio > 1.0 - (unit + 1e-6) / width
        }
        scorer = {
            None: tp.importance.RandomImportance,
            PruneImportance.L1: lambda: tp.importance.MagnitudeImportance(p=1),
            PruneImportance.L2: lambda: tp.importance.MagnitudeImportance(p=2),
            PruneImportance.TAYLOR: tp.importance.TaylorImportance,
        }[importance]()
        return tp.pruner.BasePruner(
            self.module, torch.zeros(1, 3, *self.input_size), importance=scorer, pruning_ratio=pruning_ratio,
            pruning_ratio_dict=caps, iterative_steps=steps, ignored_layers=self.protected, round_to=self.round_to,
            global_pruning=False,
        )


def _solve_channel_ratio(plan: _PrunePlan, config: PruneConfig, target_ratio: float, macs_before: int) -> float:
    """The largest kept-channel fraction whose one-shot pruned MACs are ≤ the target.

    Bisection on pruning ratio, started from a bracket around the guess 1 − √target (MACs fall
    roughly with the square of the kept fraction). Trials rank channels at random: with local
    pruning only the channel counts, not which channels, decide the MACs.
    """
    target = target_ratio * macs_before
    tried: dict[float, int] = {}

    def meets(pruning_ratio: float) -> bool:
        trial = plan.on_copy()
        trial.pruner(config, pruning_ratio=pruning_ratio, importance=None, steps=1).step()
        tried[pruning_ratio] = count_macs_params(trial.module, plan.input_size)[0]
        return tried[pruning_ratio] <= target

    guess = min(1.0 - target_ratio**0.5, MAX_PRUNING_RATIO)
    if meets(guess):  # invariant below: `low` misses the target, `high` meets it
        low, high = max(guess - _SEARCH_BRACKET, 0.0), guess
        if low > 0 and meets(low):
            low, high = 0.0, low
    else:
        low, high = guess, min(guess + _SEARCH_BRACKET, MAX_PRUNING_RATIO)
        if high == low or not meets(high):
            low, high = high, MAX_PRUNING_RATIO
            if high == low or not meets(high):
                raise CompressionError(
                    f"target_macs_ratio={target_ratio} is out of reach: removing {high:.0%} of every prunable layer's "
                    f"channels (keeping at least round_to={config.round_to}) leaves {tried[high] / macs_before:.3f} of "
                    "the MACs. Ask for more MACs, lower round_to, or ignore fewer layers."
                )
    while high - low > _SEARCH_TOLERANCE:
        middle = (low + high) / 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return 1.0 - high


def _accumulate_gradients(module: Any, train_loader: Any, *, batches: int) -> None:
    """Loss gradients for Taylor importance, in eval mode so BatchNorm statistics stay put."""
    torch = require("torch", extra="compress", what="PyTorch")

    module.eval()
    module.zero_grad(set_to_none=True)
    for index, (images, labels) in enumerate(train_loader):
        if index >= batches:
            break
        torch.nn.functional.cross_entropy(module(images), labels).backward()


def _recalibrate_batchnorm(module: Any, train_loader: Any, *, batches: int) -> None:
    """Re-estimate BatchNorm running statistics: removing channels shifts every later layer's inputs.

    A cumulative average over `batches` training batches, without gradients; weights are unchanged.
    """
    torch = require("torch", extra="compress", what="PyTorch")

    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    module.train()
    try:
        with torch.no_grad():
            for index, (images, _labels) in enumerate(train_loader):
                if index >= batches:
                    break
                module(images)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
        module.eval()
