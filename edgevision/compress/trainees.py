"""What a training stage optimises, as one `nn.Module` per loss: forward(inputs, targets) → scalar loss.

Everything that trains (the student and any 1×1 adapters) is a registered submodule, so one
`DistributedDataParallel` wrapper synchronises all of it and one `state_dict` checkpoints all of
it. The teacher is held but not registered: it is never trained, never synchronised, never saved,
and stays in eval mode when the trainee switches to train mode. Imported lazily (it imports torch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional

from ..errors import ConfigError


class Trainee(nn.Module):
    """Base: `student` is the model being trained (what validation scores and what is kept)."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        object.__setattr__(self, "_teacher", teacher)  # deliberately unregistered (see module docstring)
        if teacher is not None:
            teacher.eval()

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher

    def close(self) -> None:
        """Remove anything attached to the student (forward hooks)."""


class LabelLoss(Trainee):
    """Plain fine-tuning of a classifier: cross-entropy on labels."""

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(self.student(images), labels)


class ClassifierDistillation(Trainee):
    """``alpha · T² · KL(student/T ‖ teacher/T) + (1 − alpha) · CE`` + ``feature_weight`` · MSE on named feature maps.

    A learned 1×1 adapter (a linear map for N×C features) maps the student's channels onto the
    teacher's where pruning made them differ.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, *, temperature: float, alpha: float,
                 feature_layers: tuple[str, ...], feature_weight: float, input_size: tuple[int, int]) -> None:
        super().__init__(student, teacher)
        self.temperature, self.alpha, self.feature_weight = temperature, alpha, feature_weight
        self.layers = feature_layers if feature_weight > 0 else ()
        self._student_maps: dict[str, torch.Tensor] = {}
        self._teacher_maps: dict[str, torch.Tensor] = {}
        self._handles = _hook(student, self.layers, self._student_maps) + _hook(teacher, self.layers, self._teacher_maps)
        self.adapters = nn.ModuleDict({_key(name): adapter for name, adapter in self._make_adapters(input_size).items()})

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = self.student(images)
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        total = (1.0 - self.alpha) * functional.cross_entropy(logits, labels)
        if self.alpha > 0:
            temperature = self.temperature
            soft = functional.kl_div(
                functional.log_softmax(logits / temperature, dim=1),
                functional.log_softmax(teacher_logits / temperature, dim=1),
                reduction="batchmean", log_target=True,
            )
            total = total + self.alpha * temperature**2 * soft
        for name in self.layers:
            mapped = self.adapters[_key(name)](self._student_maps[name])
            target = self._teacher_maps[name]
            if mapped.dim() == 4 and mapped.shape[-2:] != target.shape[-2:]:
                mapped = functional.adaptive_avg_pool2d(mapped, target.shape[-2:])
            total = total + self.feature_weight / len(self.layers) * functional.mse_loss(mapped, target)
        return total

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _make_adapters(self, input_size: tuple[int, int]) -> dict[str, nn.Module]:
        """Identity where channel counts match, else a learned 1×1 conv (4-D maps) or linear map (2-D)."""
        if not self.layers:
            return {}
        probe = torch.zeros(2, 3, *input_size)
        was_training = self.student.training
        with torch.no_grad():
            self.student.eval()
            self.student(probe)
            self.teacher(probe)
        self.student.train(was_training)
        adapters: dict[str, nn.Module] = {}
        for name in self.layers:
            s, t = self._student_maps[name], self._teacher_maps[name]
            if not (isinstance(s, torch.Tensor) and isinstance(t, torch.Tensor)) or s.dim() != t.dim() or s.dim() not in (2, 4):
                raise ConfigError(f"feature layer {name!r} must output an N×C×H×W or N×C tensor in both models.")
            if s.shape[1] == t.shape[1]:
                adapters[name] = nn.Identity()
            elif s.dim() == 4:
                adapters[name] = nn.Conv2d(s.shape[1], t.shape[1], kernel_size=1, bias=False)
            else:
                adapters[name] = nn.Linear(s.shape[1], t.shape[1], bias=False)
        self._student_maps.clear()
        self._teacher_maps.clear()
        return adapters


class DetectorLoss(Trainee):
    """Plain fine-tuning of an FCOS detector: torchvision's FCOS loss (focal + GIoU + centre-ness)."""

    def forward(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> torch.Tensor:
        from ..train_detect import fcos_pass

        return sum(fcos_pass(self.student, images, targets).losses.values())


class DetectorDistillation(Trainee):
    """FCOS loss + ``feature_weight`` · channel-normalised MSE on the FPN outputs (through 1×1 adapters) +
    ``alpha`` · head-output distillation (see `distill_detect` for the terms)."""

    #: A teacher score at or above this marks an anchor whose boxes and centre-ness the student imitates.
    TEACHER_CONFIDENT = 0.3

    def __init__(self, student: nn.Module, teacher: nn.Module, *, alpha: float, feature_weight: float,
                 input_size: tuple[int, int]) -> None:
        from ..train_detect import fcos_pass

        super().__init__(student, teacher)
        self.alpha, self.feature_weight = alpha, feature_weight
        was_training = student.training
        with torch.no_grad():
            probe = torch.zeros(1, 3, *input_size)
            pairs = zip(fcos_pass(student.eval(), probe).features, fcos_pass(teacher, probe).features, strict=True)
            self.adapters = nn.ModuleList(
                nn.Identity() if s.shape[1] == t.shape[1] else nn.Conv2d(s.shape[1], t.shape[1], 1, bias=False)
                for s, t in pairs
            )
        student.train(was_training)

    def forward(self, images: torch.Tensor, targets: list[dict[str, Any]]) -> torch.Tensor:
        from ..train_detect import fcos_pass

        ours = fcos_pass(self.student, images, targets)
        with torch.no_grad():
            theirs = fcos_pass(self.teacher, images)
        total = sum(ours.losses.values())
        if self.feature_weight > 0:
            imitation = sum(
                functional.mse_loss(_standardise(adapter(s)), _standardise(t))
                for adapter, s, t in zip(self.adapters, ours.features, theirs.features, strict=True)
            )
            total = total + self.feature_weight * imitation / len(self.adapters)
        if self.alpha > 0:
            total = total + self.alpha * _head_loss(ours.head, theirs.head, self.TEACHER_CONFIDENT)
        return total


class SegmenterLoss(Trainee):
    """Plain fine-tuning of a segmenter: class-weighted cross-entropy per pixel, padding ignored."""

    def __init__(self, student: nn.Module, *, class_weights: torch.Tensor | None, ignore_index: int) -> None:
        super().__init__(student)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.ignore_index = ignore_index

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(self.student(images), masks, weight=self.class_weights,
                                        ignore_index=self.ignore_index)


class SegmenterDistillation(SegmenterLoss):
    """``(1 − alpha) · CE + alpha · T² · pixel-wise KL(student/T ‖ teacher/T)`` + ``feature_weight`` ·
    channel-normalised MSE on the inputs of the class-score layers (see `distill_segment`)."""

    def __init__(self, student: nn.Module, teacher: nn.Module, *, class_weights: torch.Tensor | None,
                 ignore_index: int, temperature: float, alpha: float, feature_weight: float,
                 input_size: tuple[int, int]) -> None:
        from .prune import prediction_layers

        super().__init__(student, class_weights=class_weights, ignore_index=ignore_index)
        object.__setattr__(self, "_teacher", teacher)
        teacher.eval()
        self.temperature, self.alpha, self.feature_weight = temperature, alpha, feature_weight
        was_training = student.training
        self.layers = tuple(prediction_layers(student.eval(), input_size)) if feature_weight > 0 else ()
        student.train(was_training)
        self._student_maps: dict[str, torch.Tensor] = {}
        self._teacher_maps: dict[str, torch.Tensor] = {}
        self._handles = _hook_inputs(student, self.layers, self._student_maps) + \
            _hook_inputs(teacher, self.layers, self._teacher_maps)
        adapters = {}
        if self.layers:
            with torch.no_grad():
                probe = torch.zeros(2, 3, *input_size)
                student.eval()(probe)
                teacher(probe)
            student.train(was_training)
            for name in self.layers:
                s, t = self._student_maps[name].shape[1], self._teacher_maps[name].shape[1]
                adapters[_key(name)] = nn.Identity() if s == t else nn.Conv2d(s, t, 1, bias=False)
        self.adapters = nn.ModuleDict(adapters)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        logits = self.student(images)
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        total = (1.0 - self.alpha) * functional.cross_entropy(logits, masks, weight=self.class_weights,
                                                             ignore_index=self.ignore_index)
        if self.alpha > 0:
            temperature = self.temperature
            per_pixel = functional.kl_div(
                functional.log_softmax(logits / temperature, dim=1),
                functional.log_softmax(teacher_logits / temperature, dim=1), reduction="none", log_target=True,
            ).sum(dim=1)  # N×H×W
            if masks.shape[-2:] == per_pixel.shape[-2:]:
                labelled = (masks != self.ignore_index).float()  # the letterbox padding teaches nothing
                soft = (per_pixel * labelled).sum() / labelled.sum().clamp(min=1.0)
            else:
                soft = per_pixel.mean()
            total = total + self.alpha * temperature**2 * soft
        for name in self.layers:
            mapped = self.adapters[_key(name)](self._student_maps[name])
            total = total + self.feature_weight / len(self.layers) * functional.mse_loss(
                _standardise(mapped), _standardise(self._teacher_maps[name]))
        return total

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _hook_inputs(module: nn.Module, layers: tuple[str, ...], store: dict[str, torch.Tensor]) -> list[Any]:
    """Keep what flows INTO each named layer (the features a class-score layer reads)."""
    named = dict(module.named_modules())
    handles = []
    for name in layers:

        def keep(_module: Any, inputs: Any, name: str = name) -> None:
            store[name] = inputs[0]

        handles.append(named[name].register_forward_pre_hook(keep))
    return handles


def _standardise(features: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per image and channel over H×W."""
    mean = features.mean(dim=(2, 3), keepdim=True)
    std = features.std(dim=(2, 3), keepdim=True)
    return (features - mean) / (std + 1e-5)


def _head_loss(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor], confident_at: float) -> torch.Tensor:
    teacher_scores = torch.sigmoid(teacher["cls_logits"])
    classes = functional.binary_cross_entropy_with_logits(
        student["cls_logits"], teacher_scores, reduction="none"
    ).sum(dim=2).mean()
    confidence = torch.sqrt(teacher_scores.amax(dim=2) * torch.sigmoid(teacher["bbox_ctrness"][..., 0]))
    confident = confidence >= confident_at
    if not bool(confident.any()):
        return classes
    boxes = functional.l1_loss(student["bbox_regression"][confident], teacher["bbox_regression"][confident])
    centreness = functional.binary_cross_entropy_with_logits(
        student["bbox_ctrness"][confident], torch.sigmoid(teacher["bbox_ctrness"][confident])
    )
    return classes + boxes + centreness


def _hook(module: nn.Module, layers: tuple[str, ...], store: dict[str, torch.Tensor]) -> list[Any]:
    named = dict(module.named_modules())
    handles = []
    for name in layers:

        def keep(_module: Any, _inputs: Any, output: Any, name: str = name) -> None:
            store[name] = output

        handles.append(named[name].register_forward_hook(keep))
    return handles


def _key(layer: str) -> str:
    """ModuleDict keys may not contain dots."""
    return layer.replace(".", "__")
