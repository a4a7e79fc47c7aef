"""Fixtures for compression tests: small models and a small training split (keeps runs short)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _first_per_class(source: Path, root: Path, count: int) -> Path:
    for class_dir in sorted(p for p in source.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir()
        for image in sorted(class_dir.iterdir())[:count]:
            shutil.copy(image, root / class_dir.name / image.name)
    return root


@pytest.fixture(scope="session")
def small_train(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 training images of each digit (300 in all)."""
    return _first_per_class(digits.train, tmp_path_factory.mktemp("small_train"), 30)


@pytest.fixture(scope="session")
def tiny_val(digits, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 8 validation images of each digit (80 in all), for tests of mechanics, not accuracy."""
    return _first_per_class(digits.val, tmp_path_factory.mktemp("tiny_val"), 8)


def _random_model(architecture: str, *, size: int = 32):
    import torch

    from edgevision import PreprocessSpec
    from edgevision.model import TrainedModel, build_architecture

    torch.manual_seed(0)
    module = build_architecture(architecture, num_classes=10)
    return TrainedModel(
        module=module, labels=[str(d) for d in range(10)], preprocess=PreprocessSpec(size=(size, size)),
        architecture=architecture, name=f"{architecture}_random",
    )


@pytest.fixture
def random_model():
    """A factory of untrained TrainedModels (seeded random init) for tests that need graphs, not accuracy."""
    return _random_model


@pytest.fixture
def mobilenet():
    return _random_model("mobilenet_v3_small")


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory):
    """(splits, TrainedModel): fcos_digits trained briefly (3 epochs) at 64×96 on 160 generated images (pruning/KD tests).

    Not 2: after 2 epochs the box regression can still be collapsed (every width 0, measured on an AMD EPYC with one
    thread), so no box decodes anywhere and detection parity is rightly not established."""
    pytest.importorskip("torch")
    from edgevision.data.detection import make_detection_dataset
    from edgevision.model import TrainedModel
    from edgevision.train_detect import train_detector

    root = tmp_path_factory.mktemp("tiny_detector")
    splits = make_detection_dataset(root / "data", counts=(160, 40, 40))
    report = train_detector(splits, root / "detector.pt", input_size=(64, 96), epochs=3, warmup_epochs=1, lr=5e-3)
    return splits, TrainedModel.load(report.checkpoint)
