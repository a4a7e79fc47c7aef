"""Pruning a detector: backbone, FPN and head convs lose channels, the prediction layers keep theirs,
MACs land at the target, and the pruned detector saves, loads, exports and detects through a runtime."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.compress import LatencyConfig, PruneConfig, prune
from edgevision.compress.prune import prediction_layers
from edgevision.compress.prune_units import group_ratio
from edgevision.model import TrainedModel
from tests.stand_in_detector import showing_best_boxes

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")
QUICK = LatencyConfig(runs=3, warmup=1)
PREDICTION = ("fcos.head.classification_head.cls_logits", "fcos.head.regression_head.bbox_ctrness",
              "fcos.head.regression_head.bbox_reg")


def conv_widths(model: TrainedModel) -> dict[str, int]:
    return {name: layer.out_channels for name, layer in model.module.named_modules() if isinstance(layer, torch.nn.Conv2d)}


def raw(model: TrainedModel, images):
    with torch.inference_mode():
        return model.module(images)


@pytest.fixture(scope="module")
def pruned(tiny_detector):
    """Half the MACs, Taylor importance on the FCOS loss, two steps with a fine-tuning epoch between."""
    splits, detector = tiny_detector
    config = PruneConfig(target_macs_ratio=0.5, importance="taylor", steps=2, finetune_epochs_per_step=1,
                         batch_size=32, latency=QUICK)
    before = {k: v.clone() for k, v in detector.module.state_dict().items()}
    model, report = prune(detector, config=config, train_data=splits.train, val_data=splits.val)
    after = detector.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "prune modified its input"
    return model, report


def test_prediction_layers_are_found_from_the_graph(tiny_detector):
    _, detector = tiny_detector
    assert prediction_layers(detector.module, detector.input_size) == sorted(PREDICTION)


def test_group_ratio_rounds_to_whole_units():
    assert group_ratio(64, 1, 0.3, 8) == pytest.approx(1 - 40.5 / 64)  # int(44.8) = 44 → 40
    assert group_ratio(64, 1, 0.97, 8) == pytest.approx(1 - 8.5 / 64)  # never below round_to
    assert group_ratio(8, 1, 0.5, 8) == 0.0  # no wider than round_to: stays whole
    assert group_ratio(48, 16, 0.3, 8) == pytest.approx(1 - 32.5 / 48)  # int(33.6) = 33 → 32: whole groups of 16


@pytest.mark.slow
def test_pruning_removes_channels_outside_the_head_only(tiny_detector, pruned):
    _, detector = tiny_detector
    model, report = pruned
    old, new = conv_widths(detector), conv_widths(model)
    for name in PREDICTION:
        assert new[name] == old[name]
    assert new["fcos.head.classification_head.cls_logits"] == len(detector.labels)
    for name in ("fcos.backbone.body.0.0", "fcos.backbone.fpn.layer_blocks.0.0", "fcos.head.classification_head.conv.0",
                 "fcos.head.regression_head.conv.3"):
        assert new[name] < old[name], name
    norms = [layer for layer in model.module.modules() if isinstance(layer, torch.nn.GroupNorm)]
    assert norms and all(norm.num_channels == 2 * norm.num_groups for norm in norms)  # whole groups of 2 went
    assert 0.4 < report.macs_ratio <= 0.5
    assert report.metric == "mAP50-95" and report.steps == 2
    assert 0.0 <= report.accuracy_after <= 1.0 and 0.0 <= report.map50_after <= 1.0
    assert report.map50_before >= report.accuracy_before
    assert "mAP50-95" in model.notes["prune"] and "cls_logits" in model.notes["prune"]
    images = torch.randn(2, 3, *detector.input_size)
    assert raw(model, images).shape == raw(detector, images).shape


def test_ignored_layers_keep_their_width(tiny_detector):
    _, detector = tiny_detector
    kept = "fcos.head.classification_head.conv.0"
    model, report = prune(detector, config=PruneConfig(channel_ratio=0.5, ignored_layers=(kept,), latency=QUICK))
    assert conv_widths(model)[kept] == 64 and conv_widths(model)["fcos.head.regression_head.conv.0"] == 32
    assert report.accuracy_after is None and report.macs_ratio < 0.8


@pytest.mark.slow
def test_pruned_detector_saves_loads_exports_and_detects(tmp_path, tiny_detector, pruned):
    pytest.importorskip("onnxruntime")
    from edgevision.export import ParityConfig, export
    from edgevision.runtimes import load_runtime

    splits, _ = tiny_detector
    model, _ = pruned
    loaded = TrainedModel.load(model.save(tmp_path / "pruned.pt"))
    assert conv_widths(loaded) == conv_widths(model) and loaded.detection == model.detection
    images = torch.randn(2, 3, *model.input_size)
    assert torch.equal(raw(loaded, images), raw(model, images))

    # a two-epoch 64×96 detector scores below the deployment threshold: show each image's best boxes so parity
    # has detections to compare (it refuses a source that finds none); raw outputs are checked exactly below
    bundle = export(showing_best_boxes(loaded, splits.val), tmp_path / "bundle", format="onnx",
                    parity=ParityConfig(data=splits.val, min_detection_map50=0.0))
    engine = load_runtime(bundle)
    assert np.abs(engine.infer(images.numpy()) - raw(model, images).numpy()).max() < 1e-4
    from edgevision.data.coco import CocoDetections

    val = CocoDetections.open(splits.val, labels=model.labels)
    detections = engine.detect([val.image(i) for i in range(3)])  # BGR uint8, as OpenCV reads
    assert len(detections) == 3
