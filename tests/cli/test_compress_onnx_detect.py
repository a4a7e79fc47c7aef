"""`edgevision compress model.onnx --task detect` and `edgevision run` on what it made: a YOLO-style export (built
here), COCO splits generated here, bundles with detection parity, the bench with mAP, the stream's boxes equal to
offline prediction; and each bad input as one line before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from edgevision import errors
from edgevision.bundle import Bundle
from edgevision.cli import app
from edgevision.data.coco import CocoDetections
from edgevision.data.detection import make_detection_dataset
from edgevision.runtimes import load_runtime
from edgevision.types import Task
from tests.stream.videos import decode_all
from tests.yolo_like import make_classifier_onnx, make_yolo_onnx, without_metadata

runner = CliRunner()
IMGSZ = (64, 96)
HOLD = 2  # video frames per test image


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory):
    return make_detection_dataset(tmp_path_factory.mktemp("det-data") / "data", counts=(4, 12, 12),
                                  image_size=(96, 128), object_height=(16, 40))


@pytest.fixture(scope="module")
def yolo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("yolo")
    return {"fixed": make_yolo_onnx(root / "yolo-fixed.onnx", imgsz=IMGSZ),
            "dynamic": make_yolo_onnx(root / "yolo-dynamic.onnx", imgsz=IMGSZ, dynamic_hw=True)}


@pytest.fixture(scope="module")
def compressed(yolo, coco, tmp_path_factory: pytest.TempPathFactory):
    """The dynamic-H/W export through `compress --task detect` with the defaults: FP32 + FP16, ONNX + OpenVINO."""
    out = tmp_path_factory.mktemp("compress") / "out"
    result = runner.invoke(app, ["compress", str(yolo["dynamic"]), "--task", "detect", "--data", str(coco.root),
                                 "-o", str(out)])
    return out, result


@pytest.fixture(scope="module")
def test_video(coco, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test split's images as a video (mp4v), each held for HOLD frames."""
    dataset = CocoDetections.open(coco.test)
    path = tmp_path_factory.mktemp("det-video") / "test.mp4"
    height, width = dataset.image(0).shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for index in range(len(dataset)):
        for _ in range(HOLD):
            writer.write(dataset.image(index))
    writer.release()
    return path


def test_compress_detect_writes_fp32_and_fp16_bundles_with_detection_parity_and_benches_map(compressed, coco):
    out, result = compressed
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir() if (p / "edgevision.json").is_file())
    assert names == ["onnx-fp16", "onnx-fp32", "openvino-fp16", "openvino-fp32"]
    for name in names:
        manifest = Bundle.load(out / name).manifest
        assert manifest.task is Task.DETECT and manifest.labels == tuple(str(d) for d in range(10))
        assert manifest.input.shape[1:] == (3, *IMGSZ) and manifest.preprocess.stride == 16
        assert manifest.detection.output == manifest.output_name and not manifest.detection.normalized_boxes
        assert manifest.detection.iou_threshold == 0.7 and manifest.outputs[0].meaning == "boxes_scores"
        parity = manifest.parity
        assert parity.task is Task.DETECT and parity.passed and str(coco.val) in parity.data
        assert parity.detection_map50 >= parity.min_detection_map50 == (0.99 if name.endswith("fp32") else 0.98)
        assert "dynamic height/width fixed to 64×96" in manifest.compression["input"]
    assert "detection parity mAP50" in result.output and "mAP50" in result.output
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert sorted(row["name"] for row in bench["rows"]) == names
    for row in bench["rows"]:
        assert row["metric"] == "mAP50-95" and row["accuracy_split"] == "test" and row["accuracy_images"] == 12
        assert 0.0 <= row["accuracy"] <= row["metrics"]["mAP50"] <= 1.0
    report = json.loads((out / "compress_report.json").read_text())
    assert report["task"] == "detect" and report["detection"]["iou_threshold"] == 0.7
    assert {row["bundle"] for row in report["bundles"]} == set(names)
    assert all(row["parity_detection_map50"] >= 0.98 for row in report["bundles"])
    assert "mAP on" in report["bench_accuracy"] and "test split" in report["bench_accuracy"]


def test_compress_detect_fixed_size_without_task_flag_reads_the_metadata(yolo, coco, tmp_path):
    out = tmp_path / "fixed"
    result = runner.invoke(app, ["compress", str(yolo["fixed"]), "--data", str(coco.root), "--export", "onnx",
                                 "--quantize", "fp32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["bench", "onnx-fp32"]
    manifest = Bundle.load(out / "onnx-fp32").manifest
    assert manifest.task is Task.DETECT and manifest.parity.max_abs_diff == 0.0 and "input" not in manifest.compression


@pytest.mark.parametrize("bundle_name", ["onnx-fp16", "openvino-fp32"])
def test_run_on_a_video_writes_the_boxes_offline_detect_finds(compressed, test_video, bundle_name, tmp_path):
    out, result = compressed
    assert result.exit_code == 0, result.output
    bundle = Bundle.load(out / bundle_name)
    jsonl = tmp_path / "boxes.jsonl"
    ran = runner.invoke(app, ["run", str(bundle.path), "--source", str(test_video), "--jsonl", str(jsonl),
                              "--threads", "1", "--no-display"])
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    frames = decode_all(test_video)  # the frames as the stream's file source decodes them
    assert len(lines) == len(frames) == 12 * HOLD
    with load_runtime(bundle, threads=1) as runtime:
        offline = runtime.detect(frames)
    assert [line["detections"] for line in lines] == [found.to_dicts() for found in offline]
    assert sum(len(line["detections"]) for line in lines) >= 12  # boxes were found, so the comparison means something
    for line, found in zip(lines, offline, strict=True):
        boxes = np.asarray([d["box"] for d in line["detections"]], np.float64).reshape(-1, 4)
        assert np.abs(boxes - found.boxes).max(initial=0.0) <= 0.005 + 1e-4  # the sink rounds to 0.01 px


# -- bad input: one line, nothing written ------------------------------------------------------
def _fails(args: list[str], tmp_path: Path, error: type[Exception], *fragments: str) -> str:
    before = sorted(tmp_path.iterdir())
    result = runner.invoke(app, ["compress", *args, "-o", str(tmp_path / "out")])
    assert isinstance(result.exception, error), result.output
    message = str(result.exception)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert sorted(tmp_path.iterdir()) == before  # no output folder, no temp folder
    return message


def test_a_classifier_given_task_detect(coco, tmp_path):
    model = make_classifier_onnx(tmp_path / "classifier.onnx", imgsz=IMGSZ)
    _fails([str(model), "--task", "detect", "--data", str(coco.root)], tmp_path, errors.ConfigError,
           "(1, 10)", "looks like a classifier's logits", "(1, 14, A)", "--task classify")


def test_an_output_layout_that_does_not_match_the_declared_task(yolo, coco, tmp_path):
    untagged = without_metadata(yolo["fixed"], tmp_path / "untagged.onnx", "task")
    _fails([str(untagged), "--task", "classify", "--data", str(coco.root)], tmp_path, errors.ConfigError,
           "(1, 14, 120)", "looks like a detector's raw head", "--task detect")
    _fails([str(yolo["fixed"]), "--task", "classify", "--data", str(coco.root)], tmp_path, errors.ConfigError,
           "--task classify", "metadata", "task 'detect'")
    three = without_metadata(make_yolo_onnx(tmp_path / "three.onnx", labels=("a", "b", "c")), tmp_path / "3.onnx",
                             "names")
    _fails([str(three), "--task", "detect", "--data", str(coco.root)], tmp_path, errors.ConfigError,
           "(1, 7, 120) (3 classes)", "(1, 14, A) for its 10 labels")


def test_an_annotation_file_that_does_not_match_its_images(yolo, coco, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(coco.root, data)
    annotations = data / "val" / "annotations.json"
    coco_json = json.loads(annotations.read_text())
    coco_json["images"][3]["width"] += 10
    annotations.write_text(json.dumps(coco_json))
    _fails([str(yolo["dynamic"]), "--task", "detect", "--data", str(data)], tmp_path, errors.DataError,
           "--data:", str(annotations), "images[3]", "says 138×96 but the file is 128×96")


def test_detector_options_that_cannot_work(yolo, coco, tmp_path):
    model, data = str(yolo["dynamic"]), str(coco.root)
    _fails([model, "--task", "detect", "--data", data, "--quantize", "bf16"], tmp_path, errors.ConfigError,
           "--quantize for a detector takes int8, fp16 or fp32")
    _fails([model, "--task", "detect", "--data", data, "--size", "72x96"], tmp_path, errors.ConfigError,
           "72x96", "stride 16")
    _fails([model, "--task", "detect", "--data", data, "--resize", "resize"], tmp_path, errors.ConfigError,
           "--resize resize", "letterbox")
    _fails([model, "--task", "detect", "--data", str(coco.train)], tmp_path, errors.DataError,
           "COCO splits train/ and val/")
