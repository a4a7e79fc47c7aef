"""Train a classifier from random init on an ImageFolder (the demo model and test models).

No pretrained weights exist here (nothing may be downloaded), so models start from scratch.
Val chooses the best epoch, so its accuracy is optimistic; an optional test folder, which
chose nothing, gives the figure to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bundle import PreprocessSpec
from .data.folder import ImageFolder
from .errors import ConfigError
from .model import TrainedModel, build_architecture

#: Called once per epoch: (epoch, epochs, train_loss, val_accuracy).
EpochCallback = Callable[[int, int, float, float], None]


def _architecture_training() -> dict[str, dict[str, float]]:
    from . import transformers

    return {transformers.ARCHITECTURE: transformers.TRAINING}


#: Architectures whose demo training differs from the CNN defaults below: name → TrainConfig fields.
ARCHITECTURE_TRAINING = _architecture_training()
#: torchvision transformers get vit_tiny's optimiser settings (not its epochs): with the CNN recipe's lr 3e-3, ViT-B/16
#: trained 2 epochs on the digits answered the same for every image (val top-1 10.0 %, parity not established).
TRANSFORMER_PREFIXES = ("vit_", "swin_")
TRANSFORMER_TRAINING = ARCHITECTURE_TRAINING["vit_tiny"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    architecture: str = "resnet18"
    input_size: int = 32
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 5e-4
    seed: int = 0
    threads: int | None = None

    @classmethod
    def for_architecture(cls, architecture: str, **overrides: object) -> TrainConfig:
        """The recipe `architecture` needs (ARCHITECTURE_TRAINING, e.g. a ViT's epochs), then `overrides` (None: keep)."""
        recipe = ARCHITECTURE_TRAINING.get(architecture)
        if recipe is None and architecture.startswith(TRANSFORMER_PREFIXES):  # torchvision's ViTs and Swins
            recipe = {key: value for key, value in TRANSFORMER_TRAINING.items() if key != "epochs"}
        settings = {**(recipe or {}), "architecture": architecture}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**settings)

    def __post_init__(self) -> None:
        if self.input_size < 16:
            raise ConfigError(f"input_size {self.input_size} is too small; use 16 or more.")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1.")


@dataclass
class TrainReport:
    """`val_accuracy` is the best epoch's (it chose that epoch); `test_accuracy` is the held-out figure."""

    val_accuracy: float
    epochs: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test_accuracy: float | None = None  # None when no test folder was given


def train_classifier(
    train_dir: str | Path,
    val_dir: str | Path,
    *,
    test_dir: str | Path | None = None,
    config: TrainConfig = TrainConfig(),
    preprocess: PreprocessSpec | None = None,
    on_epoch: EpochCallback | None = None,
) -> tuple[TrainedModel, TrainReport]:
    """Train `config.architecture` on train_dir, keep the best epoch by val accuracy, then measure it on test_dir."""
    import copy

    import torch
    from torch.utils.data import DataLoader

    from .data.transforms import TorchImageFolder, eval_transform, train_transform

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    spec = preprocess or PreprocessSpec(size=(config.input_size, config.input_size))
    train_folder = ImageFolder.open(train_dir)
    val_folder = ImageFolder.open(val_dir, labels=train_folder.labels)
    test_folder = ImageFolder.open(test_dir, labels=train_folder.labels) if test_dir is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    train_loader = DataLoader(
        TorchImageFolder(train_folder, train_transform(spec)), batch_size=config.batch_size, shuffle=True, generator=generator
    )
    val_loader = DataLoader(TorchImageFolder(val_folder, eval_transform(spec)), batch_size=256)

    module = build_architecture(config.architecture, num_classes=len(train_folder.labels), input_size=tuple(spec.size))
    _use_fast_batchnorm_momentum(module)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * len(train_loader)
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    best_accuracy, best_epoch, best_state, history = -1.0, 0, None, []
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        module.train()
        total_loss, seen = 0.0, 0
        for images, labels in train_loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(module(images), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item() * len(labels)
            seen += len(labels)
        accuracy = evaluate_torch(module, val_loader)
        history.append({"epoch": epoch, "train_loss": total_loss / seen, "val_accuracy": accuracy})
        if on_epoch:
            on_epoch(epoch, config.epochs, total_loss / seen, accuracy)
        if accuracy > best_accuracy:
            best_accuracy, best_epoch, best_state = accuracy, epoch, copy.deepcopy(module.state_dict())
    module.load_state_dict(best_state)
    module.eval()
    test_accuracy = None
    if test_folder is not None:
        test_accuracy = evaluate_torch(module, DataLoader(TorchImageFolder(test_folder, eval_transform(spec)), batch_size=256))
    model = TrainedModel(
        module=module, labels=list(train_folder.labels), preprocess=spec,
        architecture=config.architecture, name=f"{config.architecture}_{config.input_size}",
    )
    return model, TrainReport(
        val_accuracy=best_accuracy, epochs=config.epochs, seconds=time.perf_counter() - started, history=history,
        best_epoch=best_epoch, test_accuracy=test_accuracy,
    )


def _use_fast_batchnorm_momentum(module) -> None:  # noqa: ANN001
    """Short runs from scratch: MobileNetV3's BN momentum 0.01 leaves running stats unconverged."""
    import torch

    for layer in module.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = 0.1


def evaluate_torch(module, loader) -> float:  # noqa: ANN001 - torch objects
    """Top-1 accuracy of a torch module over a DataLoader of (images, labels)."""
    import torch

    module.eval()
    correct = total = 0
    with torch.inference_mode():
        for images, labels in loader:
            correct += int((module(images).argmax(1) == labels).sum())
            total += len(labels)
    return correct / max(total, 1)
