"""COCO mAP through pycocotools: known values on tiny hand-made data, and a second evaluator agreeing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.errors import ConfigError, DataError
from edgevision.metrics.detection import (
    EVAL_SCORE_THRESHOLD,
    DetectionMetrics,
    agreement_map50,
    coco_map,
)
from edgevision.tasks.detect import Detections

pytest.importorskip("pycocotools")

LABELS = ("digit", "letter")


@dataclass(frozen=True)
class Target:
    image_id: int
    file_name: str
    boxes_xyxy: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class TinyCoco:
    """The fields of `edgevision.data.coco.CocoDetections` that `coco_map` reads."""

    annotation_path: Path
    labels: tuple[str, ...]
    targets: tuple[Target, ...]


def write_split(root: Path, objects: list[list[tuple[int, tuple[float, float, float, float]]]], *,
                size: tuple[int, int] = (60, 80)) -> TinyCoco:
    """A COCO split folder: blank images/*.png + annotations.json; objects[i] = [(class id, xyxy), ...]."""
    (root / "images").mkdir(parents=True)
    images, annotations, targets = [], [], []
    for i, image_objects in enumerate(objects):
        image_id, name = 10 + i, f"images/{i:03d}.png"  # ids need not start at 1
        cv2.imwrite(str(root / name), np.zeros((*size, 3), np.uint8))
        images.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
        for class_id, (x1, y1, x2, y2) in image_objects:
            annotations.append({"id": len(annotations), "image_id": image_id, "category_id": class_id + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
        boxes = np.array([box for _, box in image_objects], np.float32).reshape(-1, 4)
        targets.append(Target(image_id, name, boxes, np.array([k for k, _ in image_objects], np.int64)))
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(LABELS)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return TinyCoco(path, LABELS, tuple(targets))


def found(*objects: tuple[int, tuple[float, float, float, float], float]) -> Detections:
    """Detections from (class id, xyxy, score) triples, best first."""
    objects = tuple(sorted(objects, key=lambda o: -o[2]))
    return Detections(np.array([o[1] for o in objects], np.float32).reshape(-1, 4), [o[2] for o in objects],
                      [o[0] for o in objects], LABELS)


A, B, C = (10, 10, 30, 30), (40, 20, 70, 50), (5, 35, 25, 55)


@pytest.fixture
def split(tmp_path) -> TinyCoco:
    return write_split(tmp_path / "val", [[(0, A), (1, B)], [(0, C)], []])  # the third image has no objects


def test_perfect_predictions_score_one(split):
    metrics = coco_map(split, [found((0, A, 0.9), (1, B, 0.8)), found((0, C, 0.7)), found()])
    assert (metrics.map50_95, metrics.map50, metrics.images) == (1.0, 1.0, 3)
    assert metrics.evaluator.startswith("pycocotools ")


def test_shifted_boxes_lose_the_strict_iou_thresholds(tmp_path):
    # A 20×20 box shifted 4 px: IoU = 16·20 / (2·400 − 320) = 2/3, a match at IoU 0.50..0.65 (4 of 10).
    data = write_split(tmp_path / "s", [[(0, A)]])
    metrics = coco_map(data, [found((0, (14, 10, 34, 30), 0.9))])
    assert metrics.map50 == pytest.approx(1.0) and metrics.map50_95 == pytest.approx(0.4)


def test_hand_checked_precision_recall_curve(tmp_path):
    # Two objects; ranked TP (0.9), FP (0.8), TP (0.7): precision 1 up to recall 0.5 (51 of COCO's 101 recall
    # points), then 2/3 up to recall 1 (50 points).
    data = write_split(tmp_path / "h", [[(0, A)], [(0, C)]])
    metrics = coco_map(data, [found((0, A, 0.9), (0, B, 0.8)), found((0, C, 0.7))])
    expected = (51 * 1.0 + 50 * 2 / 3) / 101
    assert metrics.map50 == pytest.approx(expected, abs=1e-9) and metrics.map50_95 == pytest.approx(expected, abs=1e-9)


def test_a_false_positive_on_an_image_without_objects_counts_by_its_rank(split):
    perfect = [found((0, A, 0.9), (1, B, 0.8)), found((0, C, 0.7))]
    below = coco_map(split, [*perfect, found((0, B, 0.1))])
    above = coco_map(split, [*perfect, found((0, B, 0.95))])
    assert below.map50 == pytest.approx(1.0)
    # class "digit": FP (0.95), TP, TP → precision 0, 1/2, 2/3: every recall point gets 2/3; "letter" stays 1.
    assert above.map50 == pytest.approx((2 / 3 + 1.0) / 2)


def test_no_detections_at_all_is_zero_not_a_crash(split):
    metrics = coco_map(split, [found(), found(), found()])
    assert (metrics.map50_95, metrics.map50) == (0.0, 0.0)


def test_mismatched_inputs_are_clear_errors(split, tmp_path):
    with pytest.raises(ConfigError, match="detections for 2 images but the data set has 3"):
        coco_map(split, [found(), found()])
    other = Detections(np.zeros((0, 4)), [], [], ("cat", "dog"))
    with pytest.raises(ConfigError, match="labels"):
        coco_map(split, [other] * 3)
    empty = write_split(tmp_path / "empty", [[], []])
    with pytest.raises(DataError, match="no objects"):
        coco_map(empty, [found(), found()])


def test_agreement_map50_scores_one_engine_against_another():
    reference = [found((0, A, 0.9), (0, B, 0.8)), found()]
    sizes = [(60, 80), (60, 80)]
    assert agreement_map50(reference, reference, sizes) == pytest.approx(1.0)
    nudged = [found((0, (10.5, 10, 30.5, 30), 0.88), (0, B, 0.81)), found()]
    assert agreement_map50(reference, nudged, sizes) == pytest.approx(1.0)
    half = [found((0, A, 0.9)), found()]  # one of the two reference boxes found: recall 1/2
    assert agreement_map50(reference, half, sizes) == pytest.approx(51 / 101)
    assert agreement_map50([found(), found()], [found(), found()], sizes) == 1.0
    assert agreement_map50([found(), found()], half, sizes) == 0.0
    with pytest.raises(ConfigError, match="one image size per image"):
        agreement_map50(reference, half, sizes[:1])


def test_metrics_validate():
    with pytest.raises(ConfigError, match="cannot exceed"):
        DetectionMetrics(map50_95=0.8, map50=0.5, images=3, evaluator="x")
    with pytest.raises(ConfigError, match=r"map50 must be in \[0, 1\]"):
        DetectionMetrics(map50_95=0.1, map50=1.5, images=3, evaluator="x")
    assert 0 < EVAL_SCORE_THRESHOLD < 0.01


def random_case(tmp_path: Path, seed: int) -> tuple[TinyCoco, list[Detections]]:
    """Ground truth in 12 images (one empty) and noisy detections: misses, duplicates, false positives."""
    rng = np.random.default_rng(seed)
    objects, detections = [], []
    for i in range(12):
        image_objects = [] if i == 5 else [
            (int(rng.integers(0, 2)), tuple(float(v) for v in np.r_[xy, xy + rng.uniform(6, 30, 2)]))
            for xy in rng.uniform(0, 50, (int(rng.integers(1, 5)), 2))
        ]
        objects.append(image_objects)
        guesses = []
        for class_id, box in image_objects:
            if rng.random() < 0.8:
                guesses.append((class_id, tuple(np.asarray(box) + rng.normal(0, 2, 4)), float(rng.uniform(0.3, 1))))
            if rng.random() < 0.3:  # a duplicate, lower
                guesses.append((class_id, tuple(np.asarray(box) + rng.normal(0, 4, 4)), float(rng.uniform(0, 0.5))))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            xy = rng.uniform(0, 50, 2)
            guesses.append((int(rng.integers(0, 2)), tuple(np.r_[xy, xy + 10]), float(rng.uniform(0, 1))))
        guesses = [(k, tuple(float(np.clip(v, 0, 80)) for v in np.r_[np.minimum(b[:2], b[2:]), np.maximum(b[:2], b[2:])]),
                    s) for k, b, s in guesses]
        detections.append(found(*guesses))
    return write_split(tmp_path / f"r{seed}", objects), detections


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_map_matches_faster_coco_eval(tmp_path, seed):
    """A second standard implementation gives the same numbers on the same data."""
    faster = pytest.importorskip("faster_coco_eval")
    from edgevision.metrics.detection import _normalised, _results

    data, detections = random_case(tmp_path, seed)
    ours = coco_map(data, detections)
    ground_truth = faster.COCO(_normalised(json.loads(data.annotation_path.read_text())))
    image_ids = [t.image_id for t in data.targets]
    evaluation = faster.COCOeval_faster(ground_truth, ground_truth.loadRes(_results(detections, image_ids)),
                                        iouType="bbox")
    evaluation.params.imgIds = image_ids
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert 0.2 < ours.map50 < 0.99  # a case with something to get wrong
    assert ours.map50_95 == pytest.approx(float(evaluation.stats[0]), abs=1e-6)
    assert ours.map50 == pytest.approx(float(evaluation.stats[1]), abs=1e-6)


def test_the_data_engineers_reader_gives_the_same_map(split):
    """Once `edgevision.data.coco` exists: the real reader on the same folder scores identically."""
    coco = pytest.importorskip("edgevision.data.coco")
    dataset = coco.CocoDetections.open(split.annotation_path.parent)
    detections = [found((0, A, 0.9)), found((0, C, 0.7)), found((1, B, 0.2))]
    assert coco_map(dataset, detections) == coco_map(split, detections)
