"""A Linear on a 1×1 channels-last feature map (ConvNeXt's last stage at 32 px): litert-torch mis-lowers it to a
rank-4 batch_matmul its verifier rejects; the export retries with the Linear on rows and keeps parity."""

from __future__ import annotations

import pytest

from edgevision.bundle import PreprocessSpec
from edgevision.export import export
from edgevision.model import TrainedModel

torch = pytest.importorskip("torch")
pytest.importorskip("litert_torch")


def _channels_last_mlp() -> TrainedModel:
    from torch import nn

    class LastStage(nn.Module):
        """Downsample 32 px to 1×1, then a ConvNeXt-style MLP on the channels-last tensor, then the classifier."""

        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Conv2d(3, 16, 32, stride=32)
            self.mlp = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
            self.head = nn.Linear(16, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.down(x).permute(0, 2, 3, 1)  # (N, 1, 1, C)
            x = self.mlp(x).permute(0, 3, 1, 2)
            return self.head(x.flatten(1))

    torch.manual_seed(0)
    return TrainedModel(module=LastStage().eval(), labels=list("abcd"), preprocess=PreprocessSpec(size=(32, 32)),
                        name="last-stage")


def test_a_linear_on_a_one_by_one_map_converts_with_parity(tmp_path):
    model = _channels_last_mlp()
    bundle = export(model, tmp_path / "b", format="tflite")
    assert bundle.manifest.parity.passed and bundle.manifest.parity.max_abs_diff < 1e-4
    assert [type(layer).__name__ for layer in model.module.mlp] == ["Linear", "GELU", "Linear"]  # untouched


def test_the_rewrite_is_what_makes_it_convert(tmp_path, monkeypatch):
    from edgevision import errors
    from edgevision.export import tflite

    monkeypatch.setattr(tflite, "linear_on_rows", lambda module, example: module)
    with pytest.raises(errors.ExportError, match="1×1 feature map"):
        export(_channels_last_mlp(), tmp_path / "b", format="tflite")
    assert not (tmp_path / "b").exists()
