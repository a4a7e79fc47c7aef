"""Structured pruning: channels really go, MAC targets are met, and the result saves and exports."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.compress import LatencyConfig, PruneConfig, PruneImportance, prune
from edgevision.errors import CompressionError, ConfigError
from edgevision.export import ParityConfig, export
from edgevision.model import TrainedModel
from edgevision.runtimes import load_runtime

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
QUICK = LatencyConfig(runs=3, warmup=1)


def conv_widths(model: TrainedModel) -> dict[str, int]:
    return {name: layer.out_channels for name, layer in model.module.named_modules() if isinstance(layer, torch.nn.Conv2d)}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one"),
        ({"target_macs_ratio": 0.5, "channel_ratio": 0.5}, "exactly one"),
        ({"target_macs_ratio": 1.0}, "strictly between 0 and 1"),
        ({"channel_ratio": 0.0}, "strictly between 0 and 1"),
        ({"channel_ratio": 0.5, "importance": "taylr"}, "Did you mean 'taylor'"),
        ({"channel_ratio": 0.5, "steps": 0}, "steps must be at least 1"),
        ({"channel_ratio": 0.5, "finetune_epochs_per_step": 1}, "steps=1 has none"),
        ({"channel_ratio": 0.5, "ignored_layers": "fc"}, "tuple of module names"),
        ({"channel_ratio": 0.5, "round_to": 0}, "round_to"),
        ({"channel_ratio": 0.5, "recalibration_batches": -1}, "recalibration_batches"),
    ],
)
def test_bad_configs_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        PruneConfig(**options)


def test_importance_accepts_its_name():
    assert PruneConfig(channel_ratio=0.5, importance="L2").importance is PruneImportance.L2


def test_config_errors_that_need_the_model(mobilenet):
    with pytest.raises(ConfigError, match="Did you mean 'features.1.block'"):
        prune(mobilenet, config=PruneConfig(channel_ratio=0.5, ignored_layers=("features.1.blok",)))
    with pytest.raises(ConfigError, match="Taylor importance needs train_data"):
        prune(mobilenet, config=PruneConfig(channel_ratio=0.5, importance="taylor"))
    with pytest.raises(CompressionError, match="out of reach"):
        prune(mobilenet, config=PruneConfig(target_macs_ratio=0.02, latency=QUICK))


def test_narrow_layers_keep_round_to_channels(mobilenet):
    """30 % of a 16-channel layer rounds to 0: it keeps 8 (torch-pruning alone would skip it and keep 16)."""
    pruned, _ = prune(mobilenet, config=PruneConfig(channel_ratio=0.3, latency=QUICK))
    widths = conv_widths(pruned)
    assert widths["features.0.0"] == 8
    assert widths["features.12.0"] == 168  # int(576 × 0.3) = 172, rounded down to a multiple of 8
    assert widths["features.1.block.1.fc1"] == 8, "an 8-channel squeeze layer cannot shrink below round_to"


def test_mobilenet_channels_removed_saved_and_exported(mobilenet, tmp_path):
    before = conv_widths(mobilenet)
    pruned, report = prune(mobilenet, config=PruneConfig(channel_ratio=0.5, importance="l2", latency=QUICK))

    after = conv_widths(pruned)
    assert conv_widths(mobilenet) == before, "the input model must not be modified"
    assert sum(after.values()) < 0.6 * sum(before.values())
    assert after["features.0.0"] == 8 and before["features.0.0"] == 16
    assert all(width % 8 == 0 for width in after.values())
    assert pruned.module.classifier[3].out_features == 10
    assert report.after.macs < 0.4 * report.before.macs
    assert report.after.params < report.before.params
    assert report.after.state_dict_bytes < report.before.state_dict_bytes
    assert report.accuracy_before is None and report.accuracy_after is None
    assert "l2 structured pruning" in pruned.notes["prune"]

    loaded = TrainedModel.load(pruned.save(tmp_path / "pruned.pt"))
    example = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(loaded.module(example), pruned.module(example), atol=1e-5)
    assert loaded.notes["prune"] == pruned.notes["prune"]

    bundle = export(loaded, tmp_path / "onnx", format="onnx")
    assert bundle.manifest.compression["prune"] == pruned.notes["prune"]
    with load_runtime(bundle, "onnxruntime") as runtime:
        logits = runtime.infer(example.numpy())
    np.testing.assert_allclose(logits, pruned.module(example).detach().numpy(), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_resnet18_to_half_the_macs(trained_model, digits, tmp_path):
    config = PruneConfig(target_macs_ratio=0.5, ignored_layers=("layer2.0.conv1",), latency=QUICK)
    pruned, report = prune(trained_model, config=config, train_data=digits.train, val_data=digits.val)

    assert 0.42 <= report.macs_ratio <= 0.5, report.describe()  # at or just below the target
    widths, original = conv_widths(pruned), conv_widths(trained_model)
    assert original["conv1"] == 64 and widths["conv1"] < 64
    assert widths["layer2.0.conv1"] == original["layer2.0.conv1"] == 128, "ignored layer keeps its outputs"
    assert widths["layer4.1.conv1"] < 512 and widths["layer4.1.conv1"] % 8 == 0
    assert pruned.module.fc.out_features == 10
    assert report.after.params < 0.7 * report.before.params
    assert report.before.latency_ms > 0 and report.after.latency_ms > 0
    # BatchNorm re-estimation keeps a one-shot 50 % MAC cut well above chance (10 %) before any fine-tuning.
    assert report.accuracy_before > 0.85 and report.accuracy_after > 0.5, report.describe()

    loaded = TrainedModel.load(pruned.save(tmp_path / "pruned.pt"))
    assert loaded.weights_sha256() == pruned.weights_sha256()
    bundle = export(loaded, tmp_path / "onnx", format="onnx", parity=ParityConfig(data=digits.val))
    assert bundle.manifest.parity.top1_agreement >= 0.995
    with load_runtime(bundle, "onnxruntime") as runtime:
        images = [image for image, _ in loaded_images(digits.val, 8)]
        predicted = runtime.predict(images)
    assert predicted.shape == (8, 10)


def loaded_images(folder, count: int):
    from edgevision.data import ImageFolder

    return list(ImageFolder.open(folder).subset(count))


@pytest.mark.slow
def test_taylor_iterative_with_fine_tuning(mobilenet, tiny_val):
    progress: list[tuple[int, int, float]] = []
    config = PruneConfig(
        channel_ratio=0.5, importance="taylor", steps=2, finetune_epochs_per_step=1, taylor_batches=2, latency=QUICK
    )
    pruned, report = prune(mobilenet, config=config, train_data=tiny_val, on_progress=lambda *a: progress.append(a))

    assert [(step, steps) for step, steps, _ in progress] == [(1, 2), (2, 2)]
    assert 1.0 > progress[0][2] > progress[1][2] == pytest.approx(report.macs_ratio)
    assert conv_widths(pruned)["features.0.0"] == 8
    assert not any(p.grad is not None for p in pruned.module.parameters()), "Taylor gradients must not linger"
