"""The demo segmenter: torchvision's LRASPP as one deployable tensor, its ONNX export, training mechanics, the CLI."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgevision.errors import ConfigError
from edgevision.model import TrainedModel, build_architecture
from edgevision.segmenters import ARCHITECTURE, OUTPUT_NAME, build_lraspp_segmenter, segmentation_spec
from edgevision.types import SegmentationLayout, Task

SIZE = (64, 96)  # (height, width): small, not square, multiples of the backbone's stride
CLASSES = 4


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return build_lraspp_segmenter(num_classes=CLASSES, input_size=SIZE).eval()


def test_output_is_one_tensor_of_logits_at_the_input_size(segmenter):
    images = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        logits = segmenter(images)
        expected = segmenter.lraspp(images)["out"]  # torchvision's own forward
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, CLASSES, *SIZE)
    torch.testing.assert_close(logits, expected, atol=0, rtol=0)


def test_registered_architecture_spec_and_bad_settings():
    module = build_architecture(ARCHITECTURE, num_classes=CLASSES, input_size=SIZE)
    assert type(module).__name__ == "LRASPPSegmenter" and module.input_size == SIZE
    spec = segmentation_spec()
    assert spec.output == OUTPUT_NAME and spec.layout is SegmentationLayout.CLASS_SCORES and spec.background_class == 0
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_lraspp_segmenter(num_classes=CLASSES, input_size=(64, 100))
    with pytest.raises(ConfigError, match="input_size"):
        build_lraspp_segmenter(num_classes=CLASSES)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_lraspp_segmenter(num_classes=1, input_size=SIZE)


def test_onnx_export_matches_torch(tmp_path, segmenter):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import onnx

    path = tmp_path / "segmenter.onnx"
    torch.onnx.export(segmenter, (torch.zeros(1, 3, *SIZE),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=[OUTPUT_NAME],
                      dynamic_axes={"input": {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    graph = onnx.load(str(path)).graph
    # convs, a global pool, activations, bilinear resizes (sized from the input's shape): what every engine takes
    assert {node.op_type for node in graph.node} <= {
        "Conv", "Relu", "HardSwish", "HardSigmoid", "Sigmoid", "Mul", "Add", "GlobalAveragePool", "Resize",
        "Shape", "Gather", "Slice", "Concat", "Cast", "Constant", "Unsqueeze", "Identity",
    }
    images = np.random.default_rng(0).standard_normal((2, 3, *SIZE), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": images})
    with torch.inference_mode():
        expected = segmenter(torch.from_numpy(images)).numpy()
    assert got.shape == (2, CLASSES, *SIZE)
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == expected.argmax(1)).mean() > 0.999


def test_letterboxed_mask_lines_up_with_the_letterboxed_image():
    from edgevision.train_segment import letterbox_mask, letterbox_spec

    spec = letterbox_spec((160, 192))
    mask = np.zeros((240, 320), np.uint8)
    mask[100:140, 150:170] = 3
    boxed = letterbox_mask(mask, spec, ignore_index=255)
    assert boxed.shape == (160, 192) and boxed.dtype == np.uint8
    assert (boxed[:8] == 255).all() and (boxed[-8:] == 255).all()  # 240×320 → 144×192: 8 rows of padding each side
    rows, cols = np.nonzero(boxed == 3)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (8 + 60, 8 + 84, 90, 102)


def test_class_weights_favour_rare_classes():
    from edgevision.segment_loss import class_weights

    masks = torch.zeros(1, 10, 10, dtype=torch.uint8)
    masks[0, :1, :4] = 1  # 4 % of the pixels
    masks[0, 9, 9] = 255  # ignored
    weights = class_weights(masks, 3, power=0.5, ignore_index=255)
    assert weights[1] > weights[0] and weights[2] == weights[2]  # class 2 absent: a finite weight
    assert torch.allclose(weights.mean(), torch.tensor(1.0))
    assert torch.allclose(class_weights(masks, 3, power=0.0, ignore_index=255), torch.ones(3))


def test_block_labels_keep_thin_strokes_and_the_grid():
    from edgevision.segment_loss import block_labels

    masks = torch.tensor([[[0, 0, 0, 3], [0, 0, 3, 3], [255, 255, 0, 0], [255, 255, 5, 0]]], dtype=torch.uint8)
    assert block_labels(masks, 2, background=0, ignore_index=255).tolist() == [[[0, 3], [255, 0]]]
    stroke = torch.zeros(1, 4, 4, dtype=torch.uint8)
    stroke[0, :, 1] = 7  # one pixel wide: half of each block it crosses, a tie that goes to the object
    assert block_labels(stroke, 2, background=0, ignore_index=255).tolist() == [[[7, 0], [7, 0]]]


def test_digit_crops_one_per_object():
    from edgevision.train_segment import WARMUP_CROP, digit_crops

    masks = torch.zeros(1, 64, 96, dtype=torch.uint8)
    masks[0, 5:20, 5:9] = 3
    masks[0, 40:60, 60:64] = 3  # a second 3, far from the first
    masks[0, 30:45, 30:40] = 5
    masks[0, :2] = 255  # letterbox padding is no object
    crops, labels = digit_crops(torch.randn(1, 3, 64, 96), masks, ignore_index=255)
    assert crops.shape == (3, 3, WARMUP_CROP, WARMUP_CROP) and sorted(labels.tolist()) == [3, 3, 5]


def test_rescale_batch_keeps_the_size_and_pads_with_ignore():
    from edgevision.segment_loss import rescale_batch

    generator = torch.Generator().manual_seed(0)
    images, masks = torch.randn(2, 3, 32, 48), torch.ones(2, 32, 48, dtype=torch.uint8)
    for factor in (0.75, 1.0, 1.25):
        scaled, scaled_masks = rescale_batch(images, masks, factor, ignore_index=255, generator=generator)
        assert scaled.shape == images.shape and scaled_masks.shape == masks.shape and scaled_masks.dtype == torch.uint8
        assert set(scaled_masks.unique().tolist()) == ({1, 255} if factor < 1 else {1})


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    from edgevision.data.detection import make_detection_dataset

    return make_detection_dataset(tmp_path_factory.mktemp("segmentation"), counts=(24, 8, 8))


def test_training_end_to_end_writes_a_loadable_checkpoint(tmp_path, tiny_splits):
    from edgevision.data.masks import MaskFolder
    from edgevision.train_segment import evaluate_segmenter, train_segmenter

    events = []
    report = train_segmenter(tiny_splits, tmp_path / "segmenter.pt", input_size=SIZE, epochs=2, batch_size=8,
                             lr=2e-3, seed=0, threads=1, progress=events.append)
    assert report.epochs == 2 and len(report.val_miou) == 2 and report.best_epoch in (1, 2)
    assert report.images == {"train": 24, "val": 8, "test": 8}
    assert 0 <= report.test_miou <= 1 and 0 <= report.test_pixel_accuracy <= 1
    assert report.labels == ("background", *map(str, range(10))) and len(report.test_class_iou) == 11
    assert [e.val_miou is not None for e in events].count(True) == 2
    assert events[-1].epoch == 2 and events[-1].step == events[-1].steps == 3

    loaded = TrainedModel.load(report.checkpoint)
    assert loaded.task is Task.SEGMENT and loaded.architecture == ARCHITECTURE
    assert loaded.input_size == SIZE and loaded.preprocess.resize.value == "letterbox"
    assert loaded.segmentation == segmentation_spec() and loaded.labels == list(report.labels)
    # the checkpoint holds the chosen weights: they score exactly what the report measured on test
    metrics = evaluate_segmenter(loaded.module, MaskFolder.open(tiny_splits.test), loaded.preprocess, loaded.segmentation)
    assert (metrics.miou, metrics.pixel_accuracy) == (report.test_miou, report.test_pixel_accuracy)


def test_bad_training_settings_fail_before_any_work(tmp_path, tiny_splits):
    from edgevision.train_segment import train_segmenter

    with pytest.raises(ConfigError, match="batch_size"):
        train_segmenter(tiny_splits, tmp_path / "m.pt", batch_size=1)
    with pytest.raises(ConfigError, match="class_weight_power"):
        train_segmenter(tiny_splits, tmp_path / "m.pt", class_weight_power=2.0)
    with pytest.raises(ConfigError, match="multiple of 16"):
        train_segmenter(tiny_splits, tmp_path / "m.pt", input_size=(100, 100), epochs=1)
    assert not (tmp_path / "m.pt").exists()


def test_train_demo_task_segment_writes_model_and_report(tmp_path, tiny_splits, monkeypatch):
    """`train-demo --task segment` wiring, on the tiny data (the real data set takes minutes to train on)."""
    from typer.testing import CliRunner

    from edgevision import train_segment
    from edgevision.cli import app
    from edgevision.data import detection

    monkeypatch.setattr(detection, "make_detection_dataset", lambda root, seed=0: tiny_splits)
    monkeypatch.setattr(train_segment, "train_segmenter", functools.partial(train_segment.train_segmenter, input_size=SIZE))
    result = CliRunner().invoke(app, ["train-demo", "--task", "segment", "-o", str(tmp_path), "--epochs", "1",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "test mIoU" in result.output
    summary = json.loads((tmp_path / "segment" / "train.json").read_text())
    assert summary["epochs"] == 1 and set(summary["test_class_iou"]) == {"background", *map(str, range(10))}
    assert TrainedModel.load(tmp_path / "segment" / "model.pt").task is Task.SEGMENT


def test_given_splits_are_linked_not_copied(tmp_path, tiny_splits, monkeypatch):
    from edgevision import train_segment
    from edgevision.cli.demo_segment import train_segmenter_with_progress

    monkeypatch.setattr(train_segment, "train_segmenter", functools.partial(train_segment.train_segmenter, input_size=SIZE))
    root = tmp_path / "segment"
    train_segmenter_with_progress(root, threads=1, epochs=1, splits=tiny_splits)
    assert (root / "data").is_symlink() and (root / "data").resolve() == tiny_splits.root.resolve()
    assert (root / "data" / "train" / "masks").is_dir()
