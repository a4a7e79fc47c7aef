"""The bench measures each bundle with its task's metric, and says so when given the other task's data."""

from __future__ import annotations

import pytest

from edgevision.bench import BenchConfig, bench
from edgevision.errors import EdgeVisionError
from tests.runtimes.grid_detector import grid_detector_model, painted_split

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def grid_bundle(tmp_path_factory):
    from edgevision.export import ParityConfig, export

    root = tmp_path_factory.mktemp("grid")
    painted = painted_split(root / "data" / "test")
    return export(grid_detector_model(), root / "bundle", format="onnx", parity=ParityConfig(data=painted)), painted


def test_a_detect_row_reports_map_and_times_post_processing_apart(grid_bundle):
    bundle, painted = grid_bundle
    (row,) = bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=painted, isolate=False)).rows
    assert (row.task, row.metric) == ("detect", "mAP50-95")
    assert row.accuracy == pytest.approx(1.0) and row.metrics["mAP50"] == pytest.approx(1.0)  # the squares, exactly
    assert row.postprocess.n == row.end_to_end.n == 8 == row.accuracy_images
    assert row.end_to_end.p50_ms > row.postprocess.p50_ms > 0


def test_a_detect_bundle_given_an_image_folder_says_its_metric_is_map(grid_bundle, tmp_path):
    bundle, _ = grid_bundle
    (tmp_path / "folder" / "red").mkdir(parents=True)
    with pytest.raises(EdgeVisionError, match="is a detect model, measured by COCO mAP.*is an image folder"):
        bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=tmp_path / "folder", isolate=False))


def test_a_classifier_given_a_detection_split_says_its_metric_is_top1(grid_bundle):
    from pathlib import Path

    _, painted = grid_bundle
    classifier = Path(__file__).parents[1] / "fixtures" / "bundle_schema1"
    with pytest.raises(EdgeVisionError, match="is a classify model, measured by top-1.*COCO detection split"):
        bench([classifier], config=BenchConfig(iterations=5, warmup=1, data=painted, isolate=False))
