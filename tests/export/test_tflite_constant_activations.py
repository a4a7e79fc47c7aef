"""TFLite INT8 with an activation that is constant over the calibration set (a ReLU that never fires).

MobileNetV3's squeeze-and-excitation can end up so: its `fc1` ReLU gives 0 for every image and `fc2`'s bias
alone sets the gate. Calibrated as [0, 0], the zero-width range made ai-edge-quantizer's int32 bias of `fc2`
overflow, so the gate read 0 and the model's output collapsed (the demo segmenter: mask parity 0.10).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgevision import errors
from edgevision.bundle import PreprocessSpec
from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.quantize import quantize
from edgevision.export import ParityConfig
from edgevision.export.tflite import MIN_ACTIVATION_RANGE, widen_constant_ranges
from edgevision.model import TrainedModel


def test_only_constant_ranges_are_widened():
    ranges = {"dead": {"min": np.zeros(1), "max": np.zeros(1)}, "live": {"min": np.array([-1.0]), "max": np.array([2.0])},
              "constant": {"min": np.array([3.0]), "max": np.array([3.0])}, "other": {"count": 4}}
    assert sorted(widen_constant_ranges(ranges)) == ["constant", "dead"]
    assert ranges["dead"]["max"][0] == MIN_ACTIVATION_RANGE and ranges["dead"]["min"][0] == 0.0
    assert ranges["constant"]["max"][0] == 3.0 + MIN_ACTIVATION_RANGE
    assert ranges["live"]["max"][0] == 2.0


def _gated_classifier(labels: list[str]) -> TrainedModel:
    """A conv net whose channel gate is squeeze-and-excitation with a ReLU that never fires (fc2's bias sets it)."""
    import torch
    from torch import nn

    class DeadGate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                          nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
            self.fc1, self.fc2 = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1)
            self.head = nn.Linear(16, len(labels))
            with torch.no_grad():
                self.fc1.bias.fill_(-100.0)  # the ReLU after it never fires
                self.fc2.bias.fill_(2.0)  # so the gate is hardsigmoid(2) ≈ 0.83 for every image

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.features(x)
            squeezed = torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))
            x = x * nn.functional.hardsigmoid(self.fc2(squeezed))
            return self.head(x.mean((2, 3)))

    torch.manual_seed(0)
    return TrainedModel(module=DeadGate(), labels=labels, preprocess=PreprocessSpec(size=(32, 32)), name="dead-gate")


def _trained_gated_classifier(digits) -> TrainedModel:
    """The gated classifier trained a few epochs, so its predictions vary: INT8 parity on a model that answers one
    class for every image is not established. fc1 stays dead (a ReLU that never fires passes no gradient)."""
    import torch

    from edgevision.bundle import InputSpec
    from edgevision.data.folder import ImageFolder
    from edgevision.preprocess import preprocess_batch

    model = _gated_classifier(sorted(p.name for p in digits.train.iterdir() if p.is_dir()))
    images, labels = zip(*ImageFolder.open(digits.train, labels=model.labels))
    inputs = torch.from_numpy(preprocess_batch(list(images), model.preprocess, InputSpec(name="input", shape=(1, 3, 32, 32))))
    targets = torch.tensor(labels)
    optimizer = torch.optim.Adam(model.module.parameters(), lr=3e-3)
    model.module.train()
    for _ in range(8):
        for batch in torch.randperm(len(targets), generator=torch.Generator().manual_seed(0)).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model.module(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    model.module.eval()
    with torch.no_grad():
        assert len(model.module(inputs).argmax(1).unique()) > 1  # the model's answers vary
        squeezed = model.module.fc1(model.module.features(inputs).mean((2, 3), keepdim=True))
    assert bool((squeezed < 0).all())  # and the gate's ReLU still never fires
    return model


#: Measured on this 16-channel net (64 calibration images): top-1 agreement 0.859 with the gate's range widened,
#: 0.022 without (the gate reads 0 and every image gets one class). A net this small loses more to INT8 than a real one.
AGREEMENT = 0.8


def _quantize(model: TrainedModel, digits, out):
    return quantize(model, out, format="tflite", calibration=CalibrationConfig(data=digits.train, max_images=64),
                    parity=ParityConfig(data=digits.val, min_top1_agreement=AGREEMENT))


@pytest.fixture(scope="module")
def gated(digits):
    return _trained_gated_classifier(digits)


def test_a_dead_relu_quantises_and_agrees(gated, digits, tmp_path):
    model = gated
    bundle = _quantize(model, digits, tmp_path / "int8")
    assert int(bundle.manifest.versions["int8_constant_activations"].split()[0]) >= 1  # fc1 (+ its ReLU)
    assert bundle.manifest.parity.passed


def test_without_widening_the_gate_collapses(gated, digits, tmp_path, monkeypatch):
    """The control: the same model and calibration with the [0, 0] range left as it was fails parity."""
    from edgevision.export import tflite

    monkeypatch.setattr(tflite, "widen_constant_ranges", lambda ranges: [])
    with pytest.raises(errors.ParityError, match="top-1 agreement"):
        _quantize(gated, digits, tmp_path / "int8")
