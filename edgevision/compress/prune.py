"""Structured (channel) pruning with torch-pruning's dependency graph.

Channels are physically removed (Conv/BN/Linear layers shrink, residual groups stay consistent),
so the pruned model is smaller and faster in every engine, not just sparser. Pruning is local:
every prunable channel group keeps the same fraction of its channels, rounded down to `round_to`
but never fewer than `round_to` (groups no wider than that stay whole). Channel counts therefore
do not depend on the importance criterion, which lets a MAC target be solved for.

With `target_macs_ratio`, the channel fraction is found by bisection on throwaway copies of
the model (each pruned one-shot and counted with ``tp.utils.count_ops_and_params``): the kept
fraction is the largest one whose MACs are ≤ the target, so the result lands at or just below
it. The real model is then pruned towards that fraction in `steps` linear steps (each step's widths
rounded like the last one's, which reaches it exactly), with `finetune_epochs_per_step` epochs of label fine-tuning between steps.
Given `train_data`, BatchNorm statistics are re-estimated after every step (cheap, and it is most
of what a one-shot prune loses). Recovering accuracy after the last step is `distill`'s job (or its fine-tune mode).

Detectors (task detect): the head's final prediction layers, found by walking the traced graph back
from the output to the nearest learned layers (for fcos_digits: cls_logits, bbox_reg, bbox_ctrness),
keep their outputs; backbone, FPN and the head's intermediate convs are pruned. `train_data` and
`val_data` are COCO split folders; Taylor importance and fine-tuning use the FCOS loss, BatchNorm
recalibration the letterboxed training images, and the report gives val mAP50-95 (and mAP50).
Layers normalised by GroupNorm (FCOS's head) lose whole norm groups, ranked by their mean importance:
the groups that stay normalise exactly as before, so a one-shot prune keeps what they compute
(torch-pruning's default takes the same channel from every group instead, which changes every
group's statistics), and the kept width is a multiple of both `round_to` and the group size.

Transformers: a channel group that runs through nn.MultiheadAttention (a ViT's residual stream) keeps a
multiple of num_heads channels, the same number in every head, each head keeping its own most important
channels, so heads stay heads. Architectures whose own code caches sizes (torchvision's ViT reads
`hidden_dim`) or that torch-pruning cannot handle are entries in `prune_arch`; any failure inside
torch-pruning or in the pruned model's forward is a CompressionError naming the layer.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._compat.enum import StrEnum
from .._optional import require
from ..errors import CompressionError, ConfigError, did_you_mean
from ..model import TrainedModel
from ..train import evaluate_torch
from ..types import Task
from .measure import LatencyConfig, ModelStats, count_macs_params, measure
from .model_score import PRIMARY_METRIC
from .prune_arch import after_prune, check_forward, check_prunable, run_step
from .prune_units import channel_unit, group_norm_pruner, group_ratio, out_channels, whole_units

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
    latency: LatencyConfig = LatencyConfig()  # noqa: RUF009 - frozen, so sharing it is safe

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
    """Before/after statistics; accuracies are `metric` on val_data (None when none was given): top-1, or a
    detector's mAP50-95 with its mAP50 alongside."""

    before: ModelStats
    after: ModelStats
    channel_ratio: float  # fraction of each prunable layer's channels kept (before rounding)
    target_macs_ratio: float | None
    importance: PruneImportance
    steps: int
    accuracy_before: float | None
    accuracy_after: float | None
    seconds: float
    metric: str = "top-1"
    map50_before: float | None = None  # detectors only
    map50_after: float | None = None

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
            f", val {'accuracy' if self.metric == 'top-1' else self.metric} "
            f"{self.accuracy_before:.4f} → {self.accuracy_after:.4f}"
            if self.accuracy_before is not None and self.accuracy_after is not None else ""
        )
        if self.map50_before is not None and self.map50_after is not None:
            accuracy += f", mAP50 {self.map50_before:.4f} → {self.map50_after:.4f}"
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

    `train_data` (an ImageFolder; for a detector a COCO split folder) is needed for Taylor importance
    and for fine-tuning between steps; `val_data` adds accuracy (mAP) before/after to the report.
    """
    torch = require("torch", extra="compress", what="PyTorch")

    detect = model.task is Task.DETECT
    needs_train = config.importance is PruneImportance.TAYLOR or config.finetune_epochs_per_step > 0
    if needs_train and train_data is None:
        why = "Taylor importance" if config.importance is PruneImportance.TAYLOR else "fine-tuning between steps"
        where = {Task.DETECT: "a COCO split folder (annotations.json + images/)",
                 Task.SEGMENT: "a segmentation split folder (images/ + masks/ + labels.txt)"}.get(
            model.task, "an ImageFolder path (root/<label>/<image>)")
        raise ConfigError(f"{why} needs train_data: pass {where}.")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    data = _TaskData.open(model, train_data, val_data, config=config)
    module = copy.deepcopy(model.module).eval()
    check_prunable(module)
    protected, kept_names = _protected_layers(module, config.ignored_layers, model)
    before = measure(model, latency=config.latency)
    scores_before = data.evaluate(model.module)

    plan = _PrunePlan.of(module, protected, model.input_size, round_to=config.round_to,
                         what=model.architecture or type(module).__name__)
    if config.channel_ratio is not None:
        keep = config.channel_ratio
    else:
        keep = _solve_channel_ratio(plan, config, config.target_macs_ratio, before.macs)
    for step in range(1, config.steps + 1):
        pruner = plan.pruner(config, pruning_ratio=(1.0 - keep) * step / config.steps, importance=config.importance)
        if config.importance is PruneImportance.TAYLOR:
            _accumulate_gradients(module, data.train_batches(), data.loss(module), batches=config.taylor_batches)
        plan.step(pruner)
        module.zero_grad(set_to_none=True)
        if data.has_train and config.recalibration_batches:
            _recalibrate_batchnorm(module, data.train_batches(), batches=config.recalibration_batches)
        if step < config.steps and config.finetune_epochs_per_step:
            data.fine_tune(module, epochs=config.finetune_epochs_per_step, learning_rate=config.learning_rate)
        module.eval()
        if on_progress:
            on_progress(step, config.steps, count_macs_params(module, model.input_size)[0] / before.macs)

    pruned = TrainedModel(
        module=module, labels=list(model.labels), preprocess=model.preprocess,
        architecture=model.architecture, name=model.name, notes=dict(model.notes), task=model.task,
        detection=model.detection, segmentation=model.segmentation,
    )
    scores_after = data.evaluate(module)
    report = PruneReport(
        before=before, after=measure(pruned, latency=config.latency), channel_ratio=keep,
        target_macs_ratio=config.target_macs_ratio, importance=config.importance, steps=config.steps,
        accuracy_before=scores_before[0], accuracy_after=scores_after[0], seconds=time.perf_counter() - started,
        metric=PRIMARY_METRIC[model.task], map50_before=scores_before[1] if detect else None,
        map50_after=scores_after[1] if detect else None,
    )
    pruned.notes["prune"] = f"{report.describe()}; output channels kept whole: {', '.join(kept_names)}"
    return pruned, report


@dataclass
class _TaskData:
    """What pruning needs from data, by task: training batches, their loss, fine-tuning, val scores."""

    model: TrainedModel
    train_loader: Any | None = None  # classifiers
    val_loader: Any | None = None
    detection: Any | None = None  # detectors: distill_detect.DetectionData
    segmentation: Any | None = None  # segmenters: distill_segment.SegmentationData

    @classmethod
    def open(cls, model: TrainedModel, train_data: Any, val_data: Any, *, config: PruneConfig) -> _TaskData:
        if model.task is Task.SEGMENT:
            from .distill_segment import SegmentationData

            return cls(model, segmentation=SegmentationData.open(
                model, train_data=train_data, val_data=val_data, batch_size=config.batch_size, seed=config.seed))
        if model.task is Task.DETECT:
            from .distill_detect import DetectionData, check_trainable_detector

            if train_data is not None or val_data is not None:
                check_trainable_detector(model)
            detection = DetectionData.open(model, train_data=train_data, val_data=val_data,
                                           batch_size=config.batch_size, seed=config.seed)
            return cls(model, detection=detection)
        from .distill import make_loaders

        train_loader, val_loader = make_loaders(model, train_data, val_data, batch_size=config.batch_size, seed=config.seed)
        return cls(model, train_loader=train_loader, val_loader=val_loader)

    @property
    def has_train(self) -> bool:
        cached = self.detection or self.segmentation
        return self.train_loader is not None or (cached is not None and cached.train_images is not None)

    def train_batches(self) -> Any:
        cached = self.detection or self.segmentation
        return cached.batches() if cached is not None else self.train_loader

    def loss(self, module: Any) -> Callable[[Any, Any], Any]:
        """The task's label loss as a trainee (a module: (inputs, targets) → loss) around `module`."""
        from .trainees import DetectorLoss, LabelLoss, SegmenterLoss

        if self.segmentation is not None:
            return SegmenterLoss(module, class_weights=self.segmentation.class_weights,
                                 ignore_index=self.model.segmentation.ignore_index)
        return DetectorLoss(module) if self.detection is not None else LabelLoss(module)

    def fine_tune(self, module: Any, *, epochs: int, learning_rate: float) -> None:
        if self.segmentation is not None:
            from ..train_segment import WEIGHT_DECAY
            from .distill_segment import fit_segmenter

            fit_segmenter(self.loss(module), data=self.segmentation, epochs=epochs, learning_rate=learning_rate,
                          weight_decay=WEIGHT_DECAY)
            return
        if self.detection is not None:
            from ..train_detect import WEIGHT_DECAY
            from .distill_detect import fit_detector

            fit_detector(self.loss(module), data=self.detection, epochs=epochs, learning_rate=learning_rate,
                         weight_decay=WEIGHT_DECAY)
            return
        from .distill import train_student

        train_student(self.loss(module), train_loader=self.train_loader, val_loader=self.val_loader, epochs=epochs,
                      learning_rate=learning_rate, weight_decay=5e-4)

    def evaluate(self, module: Any) -> tuple[float | None, float | None]:
        """(top-1, None) for a classifier, (mAP50-95, mAP50) for a detector, (mIoU, pixel accuracy) for a
        segmenter; Nones without val data."""
        if self.segmentation is not None:
            if self.segmentation.val is None:
                return None, None
            metrics = self.segmentation.evaluate(module)
            return metrics.miou, metrics.pixel_accuracy
        if self.detection is not None:
            if self.detection.val is None:
                return None, None
            metrics = self.detection.evaluate(module)
            return metrics.map50_95, metrics.map50
        return (evaluate_torch(module, self.val_loader) if self.val_loader is not None else None), None


def classifier_name(module: Any) -> str:
    """The output layer, always left unpruned: the last nn.Linear (or, without one, the last Conv2d)."""
    torch = require("torch", extra="compress", what="PyTorch")

    for kind in (torch.nn.Linear, torch.nn.Conv2d):
        names = [name for name, layer in module.named_modules() if isinstance(layer, kind)]
        if names:
            return names[-1]
    raise CompressionError("The model has no Linear or Conv2d layer to prune.")


def prediction_layers(module: Any, input_size: tuple[int, int]) -> list[str]:
    """A detector's final prediction layers: the learned layers nearest the output in the traced graph.

    Walks torch-pruning's dependency graph back from the output through parameter-free ops (decode,
    sigmoid, concat, reshape) and stops at the first Conv/Linear on every path; no names are assumed.
    """
    torch = require("torch", extra="compress", what="PyTorch")
    tp = require("torch_pruning", extra="compress", what="torch-pruning")

    graph = _trace(module, input_size)
    names = {id(layer): name for name, layer in module.named_modules()}
    pending = [node for node in graph.module2node.values() if not node.outputs]
    seen: set[int] = set()
    found: list[str] = []
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node.module, (torch.nn.Conv2d, torch.nn.Linear)) and id(node.module) in names:
            found.append(names[id(node.module)])
        else:
            pending.extend(node.inputs)
    del tp
    if not found:
        raise CompressionError("Found no Conv2d or Linear layer feeding the detector's output: nothing to keep whole.")
    return sorted(set(found))


def _trace(module: Any, input_size: tuple[int, int], *, whole_norm_groups: bool = False) -> Any:
    torch = require("torch", extra="compress", what="PyTorch")
    tp = require("torch_pruning", extra="compress", what="torch-pruning")

    try:
        with _unwrapped_parameters_quiet():
            return tp.DependencyGraph().build_dependency(
                module, example_inputs=torch.zeros(1, 3, *input_size),
                customized_pruners={torch.nn.GroupNorm: group_norm_pruner()} if whole_norm_groups else None,
            )
    except Exception as exc:  # tracing can fail in many ways
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CompressionError(f"torch-pruning could not trace the model's dependency graph: {first}") from exc


def _protected_layers(module: Any, ignored: tuple[str, ...], model: TrainedModel) -> tuple[list[Any], list[str]]:
    """The layers whose outputs stay whole (the user's plus the output layers), and their names."""
    named = dict(module.named_modules())
    candidates = [name for name in named if name]
    for name in ignored:
        if name not in named or not name:
            raise ConfigError(f"ignored layer {name!r} is not a module of the model.{did_you_mean(name, candidates)}")
    outputs = (prediction_layers(module, model.input_size) if model.task in (Task.DETECT, Task.SEGMENT)
               else [classifier_name(module)])
    kept = list(dict.fromkeys((*ignored, *outputs)))
    return [named[name] for name in kept], kept


@dataclass(frozen=True)
class _PrunePlan:
    """A module, its protected layers, and the width of every prunable channel group (by root layer).

    Channel rounding is done here, not by torch-pruning: each group's ratio is set so that exactly the
    rounded count survives (`_kept_channels`). torch-pruning's own `round_to` mis-rounds groups that
    GroupNorm splits (it rounds the per-group count against the whole width), and it skips a group it
    would empty, which makes MACs jump back up as the ratio grows.
    """

    module: Any
    protected: list[Any]
    widths: list[tuple[Any, int, int]]  # (root layer, output channels, kept width must be a multiple of this)
    input_size: tuple[int, int]
    round_to: int | None
    what: str  # the architecture, for error messages

    @classmethod
    def of(cls, module: Any, protected: list[Any], input_size: tuple[int, int], *, round_to: int | None,
           what: str) -> _PrunePlan:
        tp = require("torch_pruning", extra="compress", what="torch-pruning")

        graph = _trace(module, input_size, whole_norm_groups=True)
        ignored = [layer for root in protected for layer in root.modules()]
        roots = (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR, tp.ops.TORCH_LSTM)
        widths = []
        for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=roots):
            root = group[0][0].target.module
            widths.append((root, graph.get_out_channels(root), channel_unit(group, what=what)))
        if not any(width > math.lcm(round_to or 1, unit) for _, width, unit in widths):
            raise CompressionError(
                f"No prunable layer is wider than round_to={round_to}: everything is ignored or already minimal."
            )
        return cls(module, protected, widths, input_size, round_to, what)

    def on_copy(self) -> _PrunePlan:
        """The same plan on a deep copy of the module (for trial pruning)."""
        trial = copy.deepcopy(self.module)
        by_id = dict(zip(map(id, self.module.modules()), trial.modules(), strict=True))
        return _PrunePlan(
            trial, [by_id[id(layer)] for layer in self.protected],
            [(by_id[id(root)], width, unit) for root, width, unit in self.widths], self.input_size, self.round_to,
            self.what,
        )

    def step(self, pruner: Any) -> None:
        """One pruning step, then the architecture's own sizes re-synced and a forward pass checked."""
        run_step(pruner, self.module, what=self.what)
        after_prune(self.module)
        check_forward(self.module, self.input_size, what=self.what)

    def pruner(self, config: PruneConfig, *, pruning_ratio: float, importance: PruneImportance | None) -> Any:
        """A local one-step BasePruner taking the module, pruned or not, to `pruning_ratio` of the original widths
        (rounded per group); `importance=None` ranks at random (for trials where only counts matter).

        One pruner per step, not torch-pruning's iterative schedule: its intermediate widths are not rounded,
        and an attention layer or GroupNorm cannot take an arbitrary width.
        """
        torch = require("torch", extra="compress", what="PyTorch")
        tp = require("torch_pruning", extra="compress", what="torch-pruning")

        ratios = {root: group_ratio(width, unit, pruning_ratio, self.round_to, current=out_channels(root))
                  for root, width, unit in self.widths}
        scorer = {
            None: tp.importance.RandomImportance,
            PruneImportance.L1: lambda: tp.importance.MagnitudeImportance(p=1),
            PruneImportance.L2: lambda: tp.importance.MagnitudeImportance(p=2),
            PruneImportance.TAYLOR: tp.importance.TaylorImportance,
        }[importance]()
        with _unwrapped_parameters_quiet():
            return tp.pruner.BasePruner(
                self.module, torch.zeros(1, 3, *self.input_size), importance=whole_units(scorer),
                pruning_ratio=pruning_ratio, pruning_ratio_dict=ratios, iterative_steps=1,
                ignored_layers=self.protected, round_to=None, global_pruning=False,
                customized_pruners={torch.nn.GroupNorm: group_norm_pruner()},
            )


@contextlib.contextmanager
def _unwrapped_parameters_quiet() -> Iterator[None]:
    """torch-pruning warns, on every trace, that it prunes bare parameters (a ViT's class_token, pos_embedding) along
    their last dimension: right for those, and a wrong guess elsewhere fails `check_forward` by name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected", category=UserWarning)
        yield


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
        trial.step(trial.pruner(config, pruning_ratio=pruning_ratio, importance=None))
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


def _accumulate_gradients(module: Any, train_batches: Any, loss: Callable[[Any, Any], Any], *, batches: int) -> None:
    """Loss gradients for Taylor importance, in eval mode so BatchNorm statistics stay put."""
    module.eval()
    module.zero_grad(set_to_none=True)
    for index, (images, labels) in enumerate(train_batches):
        if index >= batches:
            break
        loss(images, labels).backward()


def _recalibrate_batchnorm(module: Any, train_batches: Any, *, batches: int) -> None:
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
            for index, (images, _labels) in enumerate(train_batches):
                if index >= batches:
                    break
                module(images)
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum
        module.eval()
