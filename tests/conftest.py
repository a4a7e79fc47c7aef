"""Shared fixtures: a tiny digits data set and one trained model for the whole session.

Training once (a few seconds) and reusing it keeps the suite fast; every test that needs a
bundle exports its own into tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory):
    from edgevision.data.digits import make_digits_folder

    return make_digits_folder(tmp_path_factory.mktemp("digits"), size=32)


@pytest.fixture(scope="session")
def trained_model(digits):
    """resnet18 at 32×32 trained briefly on digits (≈97 % val accuracy)."""
    from edgevision.train import TrainConfig, train_classifier

    model, report = train_classifier(digits.train, digits.val, config=TrainConfig(architecture="resnet18", epochs=3, threads=2))
    assert report.val_accuracy > 0.85, report
    return model


@pytest.fixture(scope="session")
def checkpoint(trained_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_model.save(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture(scope="session")
def onnx_bundle(trained_model, digits, tmp_path_factory: pytest.TempPathFactory):
    from edgevision.export import ParityConfig, export

    return export(trained_model, tmp_path_factory.mktemp("b") / "onnx", format="onnx", parity=ParityConfig(data=digits.val))
