"""Distillation: recovers a pruned model's accuracy; fine-tuning on the same budget is the baseline."""

from __future__ import annotations

import pytest

from edgevision.compress import DistillConfig, LatencyConfig, PruneConfig, distill, prune
from edgevision.errors import ConfigError

torch = pytest.importorskip("torch")
pytest.importorskip("torch_pruning")

#: How far below the teacher a pruned (50 % of channels, ~27 % of MACs) student may land after two
#: epochs of distillation on digits (measured: it matches the teacher, 0.983).
TEACHER_BUDGET = 0.05


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
        ({"temperature": 0.0}, "temperature"),
        ({"epochs": 0}, "at least 1"),
        ({"patience": 0}, "patience"),
        ({"feature_layers": "layer3"}, "tuple of module names"),
        ({"feature_weight": -1.0}, "feature_weight"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_configs_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        DistillConfig(**options)


def test_fine_tune_baseline_keeps_the_budget():
    config = DistillConfig(epochs=7, alpha=0.9, feature_layers=("layer3",), seed=3, learning_rate=2e-3)
    baseline = config.as_fine_tune()
    assert config.uses_teacher and not baseline.uses_teacher
    assert (baseline.epochs, baseline.learning_rate, baseline.seed, baseline.batch_size) == (7, 2e-3, 3, 64)
    assert baseline.alpha == 0.0 and baseline.feature_layers == ()


def test_mismatched_pair_and_unknown_layers(random_model, digits):
    student, teacher = random_model("mobilenet_v3_small"), random_model("mobilenet_v3_small")
    with pytest.raises(ConfigError, match="Did you mean 'features.3'"):
        distill(student, teacher, train_data=digits.train, val_data=digits.val,
                config=DistillConfig(feature_layers=("featres.3",)))
    other = random_model("mobilenet_v3_small", size=48)
    with pytest.raises(ConfigError, match="share preprocessing"):
        distill(student, other, train_data=digits.train, val_data=digits.val)
    other.labels = list("abcdefghij")
    with pytest.raises(ConfigError, match="same labels"):
        distill(student, other, train_data=digits.train, val_data=digits.val)


def test_feature_distillation_through_an_adapter_is_reproducible(random_model, tiny_val):
    """A pruned student's features.3 has fewer channels than the teacher's: a 1×1 adapter bridges them."""
    teacher = random_model("mobilenet_v3_small")
    student, _ = prune(teacher, config=PruneConfig(channel_ratio=0.5, latency=LatencyConfig(runs=2, warmup=0)))
    config = DistillConfig(epochs=1, batch_size=40, feature_layers=("features.3",), seed=5)
    runs = [distill(student, teacher, train_data=tiny_val, val_data=tiny_val, config=config) for _ in range(2)]

    (first, first_report), (second, second_report) = runs
    assert first.weights_sha256() == second.weights_sha256() != student.weights_sha256()
    assert _without_times(first_report.history) == _without_times(second_report.history)
    assert first_report.mode == "distill" and "val top-1" in first_report.describe()
    assert first.module.state_dict().keys() == student.module.state_dict().keys(), "adapters must not leak in"
    assert not first.module.features[3]._forward_hooks and not teacher.module.features[3]._forward_hooks
    assert "features.3" in first.notes["distill"] and "prune" in first.notes


@pytest.mark.slow
def test_distillation_recovers_a_pruned_resnet(trained_model, digits, record_property):
    pruned, prune_report = prune(
        trained_model, config=PruneConfig(channel_ratio=0.5, latency=LatencyConfig(runs=3, warmup=1)),
        train_data=digits.train, val_data=digits.val,
    )
    config = DistillConfig(epochs=2, feature_layers=("layer3",), seed=0)
    distilled, kd = distill(pruned, trained_model, train_data=digits.train, val_data=digits.val, config=config)
    tuned, ft = distill(pruned, trained_model, train_data=digits.train, val_data=digits.val, config=config.as_fine_tune())

    assert kd.accuracy_before == pytest.approx(prune_report.accuracy_after)
    assert kd.accuracy_after >= kd.accuracy_before, kd
    assert kd.accuracy_after >= kd.teacher_accuracy - TEACHER_BUDGET, kd
    assert (kd.mode, ft.mode) == ("distill", "fine-tune")
    assert len(kd.history) == kd.epochs_run <= 2 and 1 <= kd.best_epoch <= kd.epochs_run
    assert set(distilled.notes) == {"prune", "distill"} and set(tuned.notes) == {"prune", "fine-tune"}
    # KD vs plain fine-tuning on the same budget: recorded for the report, not asserted.
    for name, value in {
        "teacher_accuracy": kd.teacher_accuracy, "pruned_accuracy": kd.accuracy_before,
        "distilled_accuracy": kd.accuracy_after, "fine_tuned_accuracy": ft.accuracy_after,
    }.items():
        record_property(name, value)


def _without_times(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in epoch.items() if k != "train_seconds"} for epoch in history]
