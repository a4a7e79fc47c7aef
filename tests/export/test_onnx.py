"""ONNX export: FP32/FP16 bundles, parity as a gate, safe checkpoint loading."""

from __future__ import annotations


import pytest

from edgevision import errors
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel


def test_fp16_bundle_is_half_the_size_and_agrees(trained_model, digits, onnx_bundle, tmp_path):
    fp16 = export(trained_model, tmp_path / "fp16", format="onnx", precision="fp16", parity=ParityConfig(data=digits.val))
    assert fp16.manifest.precision.value == "fp16"
    assert 0.45 < fp16.size_bytes / onnx_bundle.size_bytes < 0.55
    assert fp16.manifest.parity.top1_agreement >= 0.995


def test_failed_parity_is_an_error_and_leaves_nothing(trained_model, tmp_path):
    strict = ParityConfig(relative_tolerance=0.0)  # FP16 can never be bit-exact
    with pytest.raises(errors.ParityError, match="failed parity"):
        export(trained_model, tmp_path / "bad", format="onnx", precision="fp16", parity=strict)
    assert list(tmp_path.iterdir()) == []


def test_int8_needs_quantize(trained_model, tmp_path):
    with pytest.raises(errors.ConfigError, match="calibration"):
        export(trained_model, tmp_path / "q", format="onnx", precision="int8")


def test_unknown_format_suggests(trained_model, tmp_path):
    with pytest.raises(errors.ConfigError, match="Did you mean 'onnx'"):
        export(trained_model, tmp_path / "x", format="onx")


def test_checkpoint_roundtrip(trained_model, checkpoint):
    loaded = TrainedModel.load(checkpoint)
    assert loaded.weights_sha256() == trained_model.weights_sha256()
    assert loaded.labels == trained_model.labels and loaded.preprocess == trained_model.preprocess


class _Evil:
    def __reduce__(self):
        return (print, ("code ran from a model file!",))


def test_checkpoint_with_code_is_refused(tmp_path, capsys):
    import torch

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(errors.ModelFileError, match="only loads weights"):
        TrainedModel.load(path)
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_checkpoint(checkpoint, tmp_path, damage):
    data = checkpoint.read_bytes()
    path = tmp_path / "bad.pt"
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"garbage" * 100)
    with pytest.raises(errors.ModelFileError, match="corrupt or truncated"):
        TrainedModel.load(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(errors.ModelFileError, match="does not exist"):
        TrainedModel.load(tmp_path / "none.pt")


def test_bare_state_dict_explains_how_to_wrap(tmp_path, trained_model):
    import torch

    path = tmp_path / "sd.pt"
    torch.save(trained_model.module.state_dict(), path)
    with pytest.raises(errors.ModelFileError, match="bare state_dict"):
        TrainedModel.load(path)
