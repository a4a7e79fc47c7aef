"""mIoU and pixel accuracy: edgevision's confusion matrix against scikit-learn's on the same masks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score

from edgevision import errors
from edgevision.metrics.segmentation import ConfusionMatrix, agreement_miou, segmentation_metrics


def _masks(seed: int, count: int = 5, classes: int = 4):
    rng = np.random.default_rng(seed)
    targets = [rng.integers(0, classes, size=(12, 17)).astype(np.uint8) for _ in range(count)]
    predictions = [np.where(rng.random(t.shape) < 0.7, t, rng.integers(0, classes, t.shape)).astype(np.uint8)
                   for t in targets]
    return predictions, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scikit_learn(seed):
    predictions, targets = _masks(seed)
    targets[0][:3] = 255  # unlabelled rows score nothing
    metrics = segmentation_metrics(zip(predictions, targets), 4)
    truth = np.concatenate([t.reshape(-1) for t in targets])
    guess = np.concatenate([p.reshape(-1) for p in predictions])
    keep = truth != 255
    matrix = ConfusionMatrix(4)
    for p, t in zip(predictions, targets):
        matrix.update(p, t)
    assert np.array_equal(matrix.counts, confusion_matrix(truth[keep], guess[keep], labels=range(4)))
    expected = jaccard_score(truth[keep], guess[keep], labels=range(4), average=None)
    assert metrics.class_iou == pytest.approx(tuple(expected))
    assert metrics.miou == pytest.approx(expected.mean())
    assert metrics.pixel_accuracy == pytest.approx((truth[keep] == guess[keep]).mean())
    assert metrics.images == 5 and metrics.pixels == keep.sum()


def test_classes_that_never_occur_are_left_out_of_the_mean():
    target = np.array([[0, 0], [1, 1]], np.uint8)
    metrics = segmentation_metrics([(target, target)], 5)
    assert metrics.miou == 1.0 and np.isnan(metrics.class_iou[4])


def test_agreement_is_one_for_identical_masks_and_lower_otherwise():
    predictions, targets = _masks(3)
    assert agreement_miou(targets, targets, 4) == 1.0
    assert agreement_miou(predictions, targets, 4) < 0.8


def test_bad_masks_get_one_clear_error():
    with pytest.raises(errors.ConfigError, match="differ in size"):
        segmentation_metrics([(np.zeros((2, 2)), np.zeros((3, 2)))], 2)
    with pytest.raises(errors.ConfigError, match="class id 7"):
        segmentation_metrics([(np.zeros((2, 2)), np.full((2, 2), 7))], 2)
