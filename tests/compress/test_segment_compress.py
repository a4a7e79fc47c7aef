"""Compressing a segmenter: pruning keeps the class-score layers, pixel-wise distillation, INT8 under the mIoU guard.

A seconds-trained lraspp_digits on a tiny generated split: these test the mechanics (what is kept, what each
stage reports, that the guard measures mIoU through the engine), not accuracy — `make bench` measures that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edgevision import errors
from edgevision.compress import LatencyConfig, PruneConfig, prune
from edgevision.compress.calibration import CalibrationConfig
from edgevision.compress.distill import DistillConfig, distill
from edgevision.compress.model_score import score_model
from edgevision.compress.quantize import quantize
from edgevision.data.detection import make_detection_dataset
from edgevision.export.parity import ParityConfig
from edgevision.model import TrainedModel
from edgevision.segmenters import build_lraspp_segmenter, segmentation_spec
from edgevision.train_segment import letterbox_spec
from edgevision.types import Task

SIZE = (64, 96)
LABELS = ["background", *(str(d) for d in range(10))]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return make_detection_dataset(tmp_path_factory.mktemp("seg") / "data", counts=(24, 8, 8))


@pytest.fixture(scope="module")
def segmenter():
    torch.manual_seed(0)
    return TrainedModel(module=build_lraspp_segmenter(num_classes=len(LABELS), input_size=SIZE), labels=LABELS,
                        preprocess=letterbox_spec(SIZE), architecture="lraspp_digits", name="seg", task=Task.SEGMENT,
                        segmentation=segmentation_spec())


@pytest.fixture(scope="module")
def pruned(segmenter, splits):
    return prune(segmenter, config=PruneConfig(target_macs_ratio=0.6, latency=LatencyConfig(runs=2, warmup=0)),
                 train_data=splits.train, val_data=splits.val)


def test_pruning_keeps_the_class_score_layers_and_reports_miou(segmenter, pruned):
    model, report = pruned
    assert report.metric == "mIoU" and report.macs_ratio <= 0.65 and report.map50_before is None
    assert 0.0 <= report.accuracy_before <= 1.0 and 0.0 <= report.accuracy_after <= 1.0
    layers = dict(model.module.named_modules())
    for name in ("lraspp.classifier.low_classifier", "lraspp.classifier.high_classifier"):
        assert layers[name].out_channels == len(LABELS), name
        assert name in model.notes["prune"]
    assert model.task is Task.SEGMENT and model.segmentation == segmenter.segmentation
    with torch.no_grad():
        assert model.module(torch.zeros(1, 3, *SIZE)).shape == (1, len(LABELS), *SIZE)


@pytest.mark.slow
def test_distillation_and_fine_tuning_score_by_val_miou(segmenter, pruned, splits, tmp_path):
    student, _ = pruned
    config = DistillConfig(epochs=1, batch_size=8)
    distilled, report = distill(student, segmenter, train_data=splits.train, val_data=splits.val, config=config)
    assert report.mode == "distill" and report.metric == "mIoU" and report.epochs_run == 1
    assert "pixel-wise KL" in distilled.notes["distill"]
    tuned, tuned_report = distill(student, segmenter, train_data=splits.train, val_data=splits.val,
                                  config=config.as_fine_tune())
    assert tuned_report.mode == "fine-tune" and "fine-tuned on masks" in tuned.notes["fine-tune"]
    score = score_model(distilled, splits.test)
    assert score.metric == "mIoU" and set(score.extras) == {"pixel accuracy"}
    assert TrainedModel.load(distilled.save(tmp_path / "d.pt")).segmentation == segmenter.segmentation


def test_distilling_across_tasks_or_from_a_split_of_other_classes_is_one_error(segmenter, pruned, splits, tmp_path):
    import shutil

    student, _ = pruned
    other = tmp_path / "other"
    shutil.copytree(splits.val, other)
    (other / "labels.txt").write_text("\n".join(["sky", *LABELS[1:]]) + "\n")
    with pytest.raises(errors.DataError, match="other classes than the model's labels"):
        distill(student, segmenter, train_data=splits.train, val_data=other, config=DistillConfig(epochs=1))
    from tests.compress.conftest import _random_model

    with pytest.raises(errors.ConfigError, match="same task"):
        distill(student, _random_model("mobilenet_v3_small"), train_data=splits.train, val_data=splits.val,
                config=DistillConfig(epochs=1))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_is_guarded_by_miou_through_the_engine(pruned, splits, tmp_path, fmt):
    student, _ = pruned
    bundle = quantize(student, tmp_path / fmt, format=fmt,
                      calibration=CalibrationConfig(data=splits.train, max_images=16), validation=splits.val,
                      max_accuracy_drop=0.5, parity=ParityConfig(data=splits.val, min_mask_miou=0.0))
    accuracy = bundle.manifest.compression["accuracy"]
    assert accuracy.startswith("mIoU ") and "pixel accuracy" in accuracy and f"through {fmt}" in accuracy
    assert bundle.manifest.parity.mask_miou is not None and bundle.manifest.precision.value == "int8"


@pytest.mark.slow
def test_compress_cli_follows_the_checkpoint_task(segmenter, splits, tmp_path):
    checkpoint = segmenter.save(tmp_path / "seg.pt")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgevision", "compress", str(checkpoint), "--data", str(splits.root), "-o",
               str(out), "--prune", "0.6", "--distill", "--epochs", "1", "--export", "onnx", "--quantize", "fp32",
               "--max-accuracy-drop", "0.9"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO),
                                                                        "COLUMNS": "200"}, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "compress_report.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["original", "pruned", "distilled"]
    assert {s["metric"] for s in report["stages"]} == {"mIoU"}
    assert "mIoU" in (out / "compress_report.md").read_text()
