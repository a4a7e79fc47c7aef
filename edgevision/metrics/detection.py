"""COCO mAP of a detector's `Detections`, with pycocotools' own COCOeval (bbox), never a re-implementation.

Two uses: `coco_map` scores detections against a data set's annotations (the accuracy a bench row
reports); `agreement_map50` scores one engine's detections against another's (parity: the source
model's detections are the ground truth). Class index k is COCO category_id k + 1 everywhere.

Score detections for mAP at `EVAL_SCORE_THRESHOLD`, not the deployment threshold: AP integrates over
every score, and boxes cut at 0.25 would cap recall (COCO keeps each image's 100 best).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from .._optional import require
from ..errors import ConfigError, DataError
from ..tasks.detect import Detections

#: The score threshold for mAP evaluation (as Ultralytics and torchvision validate).
EVAL_SCORE_THRESHOLD = 0.001


@dataclass(frozen=True)
class DetectionMetrics:
    """COCO box AP: mean over IoU 0.50:0.95 and at IoU 0.50, over `images` images; `evaluator` names the tool."""

    map50_95: float
    map50: float
    images: int
    evaluator: str

    def __post_init__(self) -> None:
        for name in ("map50_95", "map50"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {value}.")
        if self.map50_95 > self.map50 + 1e-9:
            raise ConfigError(f"mAP50-95 ({self.map50_95}) cannot exceed mAP50 ({self.map50}).")
        if self.images < 0:
            raise ConfigError(f"images must be >= 0, got {self.images}.")


class _Target(Protocol):
    image_id: int


class CocoDataset(Protocol):
    """What `coco_map` reads from a data set (`edgevision.data.coco.CocoDetections` is one)."""

    @property
    def annotation_path(self) -> Path: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def targets(self) -> Sequence[_Target]: ...


def coco_map(dataset: CocoDataset, detections: Sequence[Detections]) -> DetectionMetrics:
    """mAP50-95 and mAP50 of `detections` (one per image, in the data set's order) against its annotations."""
    targets = list(dataset.targets)
    if len(detections) != len(targets):
        raise ConfigError(
            f"Got detections for {len(detections)} images but the data set has {len(targets)}: pass one Detections "
            "per image, in the data set's order."
        )
    path = Path(dataset.annotation_path)
    try:
        ground_truth = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"Cannot read the COCO annotations {path}: {exc}.") from None
    _check_labels(dataset.labels, detections, ground_truth.get("categories", []), path)
    image_ids = [int(t.image_id) for t in targets]
    results = _results(detections, image_ids)
    return _evaluate(ground_truth, results, image_ids)


def agreement_map50(
    reference: Sequence[Detections], candidate: Sequence[Detections], image_sizes: Sequence[tuple[int, int]]
) -> float:
    """mAP50 of `candidate` with `reference`'s boxes as the ground truth (parity between two engines).

    `image_sizes`: (height, width) per image. Give the reference at the deployment threshold (the boxes a
    user would see) and the candidate at the same or a lower one: boxes added below every other score can
    only raise AP, so a box that sits right at the threshold in one engine and just under it in the other
    does not count as missed. No reference box anywhere: 1.0 if the candidate has none either, else 0.0.
    """
    if not len(reference) == len(candidate) == len(image_sizes):
        raise ConfigError(
            f"Agreement needs one reference, one candidate and one image size per image; got {len(reference)}, "
            f"{len(candidate)} and {len(image_sizes)}."
        )
    labels = next((d.labels for d in (*reference, *candidate) if d.labels), ())
    classes = max([len(labels)] + [int(d.class_ids.max()) + 1 for d in (*reference, *candidate) if len(d)])
    images = [{"id": i + 1, "width": int(w), "height": int(h), "file_name": f"{i + 1}"}
              for i, (h, w) in enumerate(image_sizes)]
    annotations = [{**result, "id": n + 1, "iscrowd": 0, "area": result["bbox"][2] * result["bbox"][3]}
                   for n, result in enumerate(_results(reference, [image["id"] for image in images]))]
    for annotation in annotations:
        del annotation["score"]
    if not annotations:
        return 1.0 if not any(len(d) for d in candidate) else 0.0
    categories = [{"id": k + 1, "name": labels[k] if k < len(labels) else str(k)} for k in range(classes)]
    ground_truth = {"images": images, "annotations": annotations, "categories": categories}
    return _evaluate(ground_truth, _results(candidate, [image["id"] for image in images]),
                     [image["id"] for image in images]).map50


def _results(detections: Sequence[Detections], image_ids: Sequence[int]) -> list[dict[str, Any]]:
    """COCO result dicts: bbox [x, y, w, h] in original pixels, category_id = class id + 1."""
    results = []
    for found, image_id in zip(detections, image_ids):
        boxes = found.boxes.astype(float)
        for (x1, y1, x2, y2), score, class_id in zip(boxes.tolist(), found.scores.tolist(), found.class_ids.tolist()):
            results.append({"image_id": image_id, "category_id": class_id + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    return results


def _check_labels(labels: Sequence[str], detections: Sequence[Detections], categories: list, path: Path) -> None:
    model_labels = next((d.labels for d in detections if d.labels), ())
    if labels and model_labels and tuple(labels) != tuple(model_labels):
        raise ConfigError(
            f"The detector's labels {list(model_labels)[:5]} differ from the data set's {list(labels)[:5]}: "
            "class k must mean the same thing in both (COCO category_id k + 1)."
        )
    ids = sorted(int(c["id"]) for c in categories)
    if labels and ids and ids != list(range(1, len(ids) + 1)):
        raise DataError(f"{path}: category ids {ids[:5]}... are not 1..{len(ids)} (class index + 1).")


def _evaluate(ground_truth: dict[str, Any], results: list[dict[str, Any]], image_ids: list[int]) -> DetectionMetrics:
    require("pycocotools", extra="metrics", what="pycocotools (COCO mAP)")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    evaluator = f"pycocotools {_version('pycocotools')}"
    ground_truth = _normalised(ground_truth)
    wanted = set(image_ids)
    if not any(a["image_id"] in wanted for a in ground_truth["annotations"]):
        raise DataError("The ground truth has no objects in these images: mAP is undefined. Annotate some objects.")
    if not results:  # pycocotools cannot load an empty result list; nothing found is an AP of 0
        return DetectionMetrics(map50_95=0.0, map50=0.0, images=len(image_ids), evaluator=evaluator)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and the summary table
        coco_gt = COCO()
        coco_gt.dataset = ground_truth
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluation = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluation.params.imgIds = list(image_ids)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    map50_95, map50 = (max(float(v), 0.0) for v in evaluation.stats[:2])  # -1: no ground truth in a category
    return DetectionMetrics(map50_95=map50_95, map50=map50, images=len(image_ids), evaluator=evaluator)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # e.g. the system's package without pip metadata
        return "(version unknown)"


def _normalised(ground_truth: dict[str, Any]) -> dict[str, Any]:
    """A copy COCOeval can use: annotation ids from 1 (it reads id 0 as "unmatched"), iscrowd and area present."""
    annotations = []
    for n, annotation in enumerate(ground_truth.get("annotations", [])):
        x, y, w, h = (float(v) for v in annotation["bbox"])
        annotations.append({**annotation, "id": n + 1, "bbox": [x, y, w, h],
                            "iscrowd": int(annotation.get("iscrowd", 0)), "area": float(annotation.get("area", w * h))})
    return {**ground_truth, "annotations": annotations, "images": list(ground_truth.get("images", [])),
            "categories": list(ground_truth.get("categories", []))}
