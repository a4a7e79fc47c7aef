"""Knowledge distillation: recover a compressed student's accuracy from its uncompressed teacher.

The loss is ``alpha · T² · KL(student/T ‖ teacher/T) + (1 − alpha) · CE(student, labels)``,
plus ``feature_weight · MSE`` between named feature maps when `feature_layers` is set (a learned
1×1 adapter maps the student's channels onto the teacher's where pruning made them differ; it
is discarded after training). ``alpha=0`` without feature layers is plain fine-tuning on the same
budget and schedule (`DistillConfig.as_fine_tune()`), so the two can be compared fairly.

The losses are modules in `trainees`; `train_student` runs the shared training loop (`fit`: validation
each epoch, best checkpoint, early stop, resumable, distributed under torchrun) over DataLoaders; the
pruner reuses it for its short fine-tuning between steps.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import ConfigError, did_you_mean
from ..model import TrainedModel
from ..train import EpochCallback, evaluate_torch
from ..types import Task
from .distributed import world
from .fit import EpochCheckpoint, FitResult, fit, torch_threads


@dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Distillation options. `patience`: epochs without a better val accuracy before stopping (None: never).

    For a detector (see `distill_detect`): the loss is the FCOS ground-truth loss + `feature_weight` ·
    FPN-feature imitation + `alpha` · head-output distillation; `temperature` and `feature_layers` do
    not apply (the FPN outputs are the imitated features).
    """

    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    temperature: float = 4.0
    alpha: float = 0.7
    feature_layers: tuple[str, ...] = ()
    feature_weight: float = 1.0
    patience: int | None = 3
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.feature_layers, str):
            raise ConfigError(f"feature_layers must be a tuple of module names, e.g. ({self.feature_layers!r},).")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}.")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha weighs soft targets against labels and must lie in [0, 1], got {self.alpha}.")
        if not self.temperature > 0:
            raise ConfigError(f"temperature must be positive (typically 2-8), got {self.temperature}.")
        if not self.learning_rate > 0 or self.weight_decay < 0:
            raise ConfigError("learning_rate must be positive and weight_decay non-negative.")
        if self.feature_weight < 0:
            raise ConfigError(f"feature_weight must be non-negative, got {self.feature_weight}.")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be at least 1 epoch (or None to never stop early), got {self.patience}.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}.")

    @property
    def uses_teacher(self) -> bool:
        return self.alpha > 0 or (bool(self.feature_layers) and self.feature_weight > 0)

    def as_fine_tune(self) -> DistillConfig:
        """The same budget and schedule with labels only: the baseline distillation must beat."""
        return replace(self, alpha=0.0, feature_layers=(), feature_weight=0.0)


@dataclass(kw_only=True)
class DistillReport:
    """Val accuracies are `metric` on `val_data` (top-1, or a detector's mAP50-95 with its mAP50 alongside);
    `accuracy_after` is the best epoch's, which is kept."""

    mode: str  # "distill" or "fine-tune"
    accuracy_before: float
    accuracy_after: float
    teacher_accuracy: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    metric: str = "top-1"
    map50_before: float | None = None  # detectors only
    map50_after: float | None = None
    teacher_map50: float | None = None
    resumed_from_epoch: int = 0  # a resumed run: the epochs its checkpoint had completed

    def describe(self) -> str:
        """One line for logs and the CLI: what the stage did and what val said."""
        def score(value: float) -> str:
            return f"{value:.2%}" if self.metric == "top-1" else f"{value:.3f}"

        return (f"{self.mode}: {self.epochs_run} epoch(s) in {self.seconds:.0f} s (val chose epoch {self.best_epoch}"
                f"{', stopped early' if self.stopped_early else ''}), val {self.metric} {score(self.accuracy_before)} → "
                f"{score(self.accuracy_after)} (teacher {score(self.teacher_accuracy)})")

    def __post_init__(self) -> None:
        for name in ("accuracy_before", "accuracy_after", "teacher_accuracy", "map50_before", "map50_after",
                     "teacher_map50"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DistillReport.{name} must be an accuracy in [0, 1], got {getattr(self, name)}.")


def distill(
    student: TrainedModel,
    teacher: TrainedModel,
    *,
    train_data: str | Path,
    val_data: str | Path,
    config: DistillConfig = DistillConfig(),
    on_epoch: EpochCallback | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> tuple[TrainedModel, DistillReport]:
    """Train a copy of `student` against `teacher`; the inputs are not modified.

    Detectors (task detect): `train_data`/`val_data` are COCO split folders and the loss is described in
    `distill_detect`; val mAP50-95 chooses the epoch. `checkpoint` saves the state after every epoch and,
    with `resume`, continues from the last completed one. Under torchrun every rank calls this and the
    ranks train one model together (see `fit`); rank 0's result is the one to keep.
    """
    torch = require("torch", extra="compress", what="PyTorch")
    if student.task is not teacher.task:
        raise ConfigError(f"Student ({student.task.value}) and teacher ({teacher.task.value}) must do the same task to "
                          "distill.")
    if student.task is Task.DETECT:
        from .distill_detect import distill_detector

        return distill_detector(student, teacher, train_data=train_data, val_data=val_data, config=config,
                                on_epoch=on_epoch, checkpoint=checkpoint)
    if student.task is Task.SEGMENT:
        from .distill_segment import distill_segmenter

        return distill_segmenter(student, teacher, train_data=train_data, val_data=val_data, config=config,
                                 on_epoch=on_epoch, checkpoint=checkpoint)
    from .trainees import ClassifierDistillation, LabelLoss

    _check_pair(student, teacher)
    _check_feature_layers(student, teacher, config.feature_layers)
    started = time.perf_counter()
    with torch_threads(config.threads):
        torch.manual_seed(config.seed + world().rank)
        train_loader, val_loader = make_loaders(student, train_data, val_data, batch_size=config.batch_size, seed=config.seed)
        module = copy.deepcopy(student.module)
        accuracy_before = evaluate_torch(module, val_loader)
        teacher_accuracy = evaluate_torch(teacher.module, val_loader)
        trainee = (ClassifierDistillation(module, teacher.module, temperature=config.temperature, alpha=config.alpha,
                                          feature_layers=config.feature_layers, feature_weight=config.feature_weight,
                                          input_size=student.input_size)
                   if config.uses_teacher else LabelLoss(module))
        try:
            fit = train_student(trainee, train_loader=train_loader, val_loader=val_loader, epochs=config.epochs,
                                learning_rate=config.learning_rate, weight_decay=config.weight_decay,
                                patience=config.patience, on_epoch=on_epoch, checkpoint=checkpoint)
        finally:
            trainee.close()
    mode = "distill" if config.uses_teacher else "fine-tune"
    report = DistillReport(
        mode=mode, accuracy_before=accuracy_before, accuracy_after=float(fit.best_score), teacher_accuracy=teacher_accuracy,
        best_epoch=fit.best_epoch, epochs_run=len(fit.history), stopped_early=fit.stopped_early,
        seconds=time.perf_counter() - started, history=fit.history, resumed_from_epoch=fit.resumed_from_epoch,
    )
    how = (
        f"KD from {teacher.name} (T={config.temperature:g}, alpha={config.alpha:g}"
        + (f", features {', '.join(config.feature_layers)}" if config.feature_layers else "") + ")"
        if config.uses_teacher else "fine-tuned on labels"
    )
    notes = dict(student.notes)
    notes[mode] = (
        f"{how}, {report.epochs_run}/{config.epochs} epochs (best {report.best_epoch}): "
        f"val accuracy {accuracy_before:.4f} → {report.accuracy_after:.4f} (teacher {teacher_accuracy:.4f})"
    )
    distilled = TrainedModel(
        module=module, labels=list(student.labels), preprocess=student.preprocess,
        architecture=student.architecture, name=student.name, notes=notes,
    )
    return distilled, report


def train_student(
    trainee: Any,
    *,
    train_loader: Any,
    val_loader: Any | None,
    epochs: int,
    learning_rate: float,
    weight_decay: float,
    patience: int | None = None,
    on_epoch: EpochCallback | None = None,
    checkpoint: EpochCheckpoint | None = None,
) -> FitResult:
    """`fit` for a classifier over DataLoaders; val top-1 (history key "val_accuracy") chooses the epoch."""
    validate = (lambda m: {"val_accuracy": evaluate_torch(m, val_loader)}) if val_loader is not None else None
    return fit(trainee, batches=epoch_batches(train_loader), steps_per_epoch=len(train_loader), validate=validate,
               score_key="val_accuracy", epochs=epochs, learning_rate=learning_rate, weight_decay=weight_decay,
               patience=patience, on_epoch=on_epoch, checkpoint=checkpoint)


def epoch_batches(loader: Any) -> Any:
    """The loader's batches for an epoch: its DistributedSampler reshuffles by seed + epoch (resumable, per rank)."""

    def batches(epoch: int) -> Any:
        loader.sampler.set_epoch(epoch)
        return loader

    return batches


def make_loaders(
    model: TrainedModel, train_data: str | Path | None, val_data: str | Path | None, *, batch_size: int, seed: int
) -> tuple[Any | None, Any | None]:
    """(augmented train, plain val) DataLoaders over ImageFolders, labelled in the model's order.

    The train loader's DistributedSampler shuffles by seed + epoch and gives this rank its share with
    `batch_size` ÷ world size images per step (a world of one outside torchrun), so the global batch
    and the schedule do not depend on how many processes train.
    """
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    from ..data.folder import ImageFolder
    from ..data.transforms import TorchImageFolder, eval_transform, train_transform

    here = world()
    train_loader = val_loader = None
    if train_data is not None:
        folder = ImageFolder.open(train_data, labels=model.labels)
        dataset = TorchImageFolder(folder, train_transform(model.preprocess))
        sampler = DistributedSampler(dataset, num_replicas=here.size, rank=here.rank, shuffle=True, seed=seed)
        train_loader = DataLoader(dataset, batch_size=max(batch_size // here.size, 1), sampler=sampler)
    if val_data is not None:
        folder = ImageFolder.open(val_data, labels=model.labels)
        val_loader = DataLoader(TorchImageFolder(folder, eval_transform(model.preprocess)), batch_size=256)
    return train_loader, val_loader


def _check_feature_layers(student: TrainedModel, teacher: TrainedModel, layers: tuple[str, ...]) -> None:
    if not layers:
        return
    for role, model in (("student", student), ("teacher", teacher)):
        names = [name for name, _ in model.module.named_modules() if name]
        for name in layers:
            if name not in names:
                raise ConfigError(f"feature layer {name!r} is not a module of the {role}.{did_you_mean(name, names)}")


def _check_pair(student: TrainedModel, teacher: TrainedModel) -> None:
    if list(student.labels) != list(teacher.labels):
        raise ConfigError("Student and teacher must have the same labels in the same order to distill.")
    if student.preprocess != teacher.preprocess:
        raise ConfigError(
            "Student and teacher must share preprocessing (input size, mean/std, colour order) to see the same images."
        )
