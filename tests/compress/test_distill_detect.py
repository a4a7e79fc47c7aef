"""Detector distillation (FPN features + head outputs) and its fine-tune baseline on the same budget.

What must hold is asserted (both run and report val mAP, the teacher is untouched, the adapters are
discarded); which of the two wins is measured and reported, not asserted.
"""

from __future__ import annotations

import math

import pytest

from edgevision.compress import DistillConfig, LatencyConfig, PruneConfig, distill, prune
from edgevision.errors import ConfigError
from edgevision.types import Task

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")


@pytest.fixture(scope="module")
def student(tiny_detector):
    """The tiny detector pruned one-shot to half its channels (no data needed)."""
    _, detector = tiny_detector
    model, _ = prune(detector, config=PruneConfig(channel_ratio=0.5, latency=LatencyConfig(runs=1, warmup=0)))
    return model


def test_fine_tune_mode_drops_both_teacher_terms():
    baseline = DistillConfig(alpha=0.5, feature_weight=2.0).as_fine_tune()
    assert (baseline.alpha, baseline.feature_weight, baseline.uses_teacher) == (0.0, 0.0, False)


def test_detector_config_errors(tiny_detector, student, random_model):
    splits, detector = tiny_detector
    with pytest.raises(ConfigError, match="FPN outputs"):
        distill(student, detector, train_data=splits.train, val_data=splits.val,
                config=DistillConfig(feature_layers=("fcos.backbone.fpn",)))
    with pytest.raises(ConfigError, match="must do the same task"):
        distill(random_model("mobilenet_v3_small"), detector, train_data=splits.train, val_data=splits.val)


@pytest.mark.slow
def test_distillation_and_fine_tuning_both_run_and_report_map(tiny_detector, student):
    splits, teacher = tiny_detector
    teacher_state = {k: v.clone() for k, v in teacher.module.state_dict().items()}
    student_keys = {k: v.shape for k, v in student.module.state_dict().items()}
    config = DistillConfig(epochs=2, batch_size=32, learning_rate=2e-3, alpha=1.0, feature_weight=1.0, patience=None)
    results = {}
    for mode, settings in (("distill", config), ("fine-tune", config.as_fine_tune())):
        model, report = distill(student, teacher, train_data=splits.train, val_data=splits.val, config=settings)
        results[mode] = report
        assert report.mode == mode and report.metric == "mAP50-95"
        assert report.describe().startswith(f"{mode}: 2 epoch(s)") and f"→ {report.accuracy_after:.3f}" in report.describe()
        assert report.epochs_run == 2 and report.best_epoch in (1, 2) and len(report.history) == 2
        for value in (report.accuracy_before, report.accuracy_after, report.map50_after, report.teacher_accuracy):
            assert math.isfinite(value) and 0.0 <= value <= 1.0
        assert report.accuracy_after == max(h["val_map50_95"] for h in report.history)
        assert report.history[0]["train_seconds"] > 0
        assert model.task is Task.DETECT and model.detection == student.detection and mode in model.notes
        # the adapters are discarded: the result has exactly the student's parameters and shapes
        assert {k: v.shape for k, v in model.module.state_dict().items()} == student_keys
    assert results["distill"].teacher_accuracy == results["fine-tune"].teacher_accuracy
    assert all(torch.equal(v, teacher.module.state_dict()[k]) for k, v in teacher_state.items())
