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


@pytest.fixture(scope="module")
def segment_bundle(tmp_path_factory):
    from edgevision.export import ParityConfig, export
    from tests.runtimes.block_segmenter import block_segmenter_model, painted_mask_split

    root = tmp_path_factory.mktemp("blocks")
    painted = painted_mask_split(root / "data" / "test")
    return export(block_segmenter_model(), root / "bundle", format="onnx", parity=ParityConfig(data=painted)), painted


def test_a_segment_row_reports_miou_and_pixel_accuracy_and_times_post_processing_apart(segment_bundle, tmp_path):
    from edgevision.bench.report import save_report, to_markdown

    bundle, painted = segment_bundle
    report = bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=painted, isolate=False))
    (row,) = report.rows
    assert (row.task, row.metric) == ("segment", "mIoU")
    assert row.accuracy == 1.0 and row.metrics == {"pixel_accuracy": 1.0}  # the painted squares, exactly
    assert row.postprocess.n == row.end_to_end.n == 6 == row.accuracy_images
    assert row.end_to_end.p50_ms > row.postprocess.p50_ms > 0
    header = to_markdown(report).splitlines()[0]
    assert "post-processing p50 ms" in header and "mIoU" in header and "pixel acc." in header
    csv_lines = save_report(report, tmp_path)["csv"].read_text().splitlines()
    assert csv_lines[0].endswith(",pixel_accuracy") and csv_lines[1].endswith(",1.0000")


def test_unlabelled_pixels_count_nowhere_and_a_wrong_label_costs_its_pixels(segment_bundle, tmp_path):
    import shutil

    import cv2
    import numpy as np

    bundle, painted = segment_bundle
    split = tmp_path / "test"
    shutil.copytree(painted, split)
    first = cv2.imread(str(split / "masks" / "000.png"), cv2.IMREAD_UNCHANGED)
    first[first == 1] = 255  # the red square unlabelled: scores nothing either way
    cv2.imwrite(str(split / "masks" / "000.png"), first)
    second = cv2.imread(str(split / "masks" / "001.png"), cv2.IMREAD_UNCHANGED)
    wrong = np.argwhere(second == 0)[:36]  # 36 background pixels annotated as blue
    second[wrong[:, 0], wrong[:, 1]] = 2
    cv2.imwrite(str(split / "masks" / "001.png"), second)
    (row,) = bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=split, isolate=False)).rows
    labelled = 6 * 48 * 96 - int(np.sum(first == 255))
    assert row.metrics["pixel_accuracy"] == pytest.approx(1 - 36 / labelled)
    assert row.accuracy < 1.0


def test_a_segment_bundle_given_other_data_says_its_metric_is_miou(segment_bundle, tmp_path):
    bundle, _ = segment_bundle
    coco = painted_split(tmp_path / "coco")
    with pytest.raises(EdgeVisionError, match="is a segment model, measured by mIoU on a mask split.*is a COCO detection"):
        bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=coco, isolate=False))
    (tmp_path / "folder" / "red").mkdir(parents=True)
    with pytest.raises(EdgeVisionError, match="is a segment model, measured by mIoU.*is an image folder"):
        bench([bundle], config=BenchConfig(iterations=5, warmup=1, data=tmp_path / "folder", isolate=False))
