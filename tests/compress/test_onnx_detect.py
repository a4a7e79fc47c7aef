"""ONNX in for detectors: a YOLOv8/YOLO11-style export (made here, tests/yolo_like.py) opened from its metadata,
checked against the declared task, and turned into a bundle whose boxes are the original file's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from edgevision.bundle import Bundle
from edgevision.compress.onnx_input import (
    OnnxModel,
    export_onnx_model,
    read_yolo_metadata,
    resolve_task,
    ultralytics_preprocess,
)
from edgevision.data.coco import CocoDetections
from edgevision.data.detection import make_detection_dataset
from edgevision.errors import ConfigError
from edgevision.export.parity import ParityConfig
from edgevision.preprocess import letterbox_geometry, preprocess_batch
from edgevision.runtimes import load_runtime
from edgevision.tasks.detect import postprocess_batch
from edgevision.types import BoxFormat, ColorOrder, Format, Layout, Precision, ResizePolicy, Task
from tests.yolo_like import make_classifier_onnx, make_yolo_onnx, without_metadata

LABELS = tuple(str(d) for d in range(10))
IMGSZ = (64, 96)
CANDIDATES = (64 // 8) * (96 // 8) + (64 // 16) * (96 // 16)  # the builder's strides 8 and 16


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("yolo-onnx")
    return {
        "fixed": make_yolo_onnx(root / "fixed.onnx", imgsz=IMGSZ),
        "dynamic": make_yolo_onnx(root / "dynamic.onnx", imgsz=IMGSZ, dynamic_hw=True),
        "classifier": make_classifier_onnx(root / "classifier.onnx", imgsz=IMGSZ),
    }


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory):
    return make_detection_dataset(tmp_path_factory.mktemp("coco"), counts=(2, 8, 2), image_size=(96, 128),
                                  object_height=(16, 40))


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_a_yolo_export_opens_from_its_metadata_as_ultralytics_preprocesses_it(models, kind):
    model = OnnxModel.open(models[kind])  # no task: the metadata says detect
    assert model.task is Task.DETECT and model.labels == list(LABELS) and model.input_size == IMGSZ
    assert model.preprocess == ultralytics_preprocess(IMGSZ, stride=16)  # metadata stride 16, imgsz [64, 96]
    spec = model.preprocess
    assert (spec.resize, spec.pad_value, spec.color_order, spec.mean, spec.std) == (
        ResizePolicy.LETTERBOX, 114.0, ColorOrder.RGB, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert spec.scale == pytest.approx(1 / 255)
    detection = model.detection
    assert detection is not None and detection.output == "output0" and detection.box_format is BoxFormat.CXCYWH
    assert (detection.normalized_boxes, detection.class_agnostic, detection.strides) == (False, False, (8, 16))
    assert (detection.score_threshold, detection.iou_threshold) == (0.25, 0.7)
    assert ("dynamic height/width fixed to 64×96" in model.notes.get("input", "")) == (kind == "dynamic")
    assert model.layout is Layout.NCHW and model.dynamic_batch


def test_metadata_is_read_and_a_dynamic_size_can_be_chosen(models):
    meta = read_yolo_metadata(models["dynamic"])
    assert (meta.task, meta.imgsz, meta.stride) == ("detect", IMGSZ, 16)
    bigger = OnnxModel.open(models["dynamic"], task="detect", preprocess=ultralytics_preprocess((128, 160), stride=16))
    assert bigger.input_size == (128, 160) and bigger.detection.strides == (8, 16)
    assert bigger.reference_outputs(np.zeros((1, 3, 128, 160), np.float32)).shape == (1, 14, 16 * 20 + 8 * 10)
    with pytest.raises(ConfigError, match=r"differs from the model input \(64, 96\)"):
        OnnxModel.open(models["fixed"], preprocess=ultralytics_preprocess((128, 160), stride=16))


def test_without_task_metadata_the_task_is_classify_unless_given(models, tmp_path):
    bare = without_metadata(models["fixed"], tmp_path / "bare.onnx", "task", "imgsz", "stride")
    assert resolve_task(bare, None) is Task.CLASSIFY and resolve_task(models["fixed"], None) is Task.DETECT
    model = OnnxModel.open(bare, task=Task.DETECT)  # graph size, default stride 32 (64 and 96 are multiples)
    assert model.preprocess.stride == 32 and model.detection.strides == ()  # 8..32 do not count 120 candidates
    with pytest.raises(ConfigError, match="40x72 .* not a multiple of the model's stride 16") as error:
        OnnxModel.open(make_yolo_onnx(tmp_path / "odd.onnx", imgsz=(40, 72)))
    assert "\n" not in str(error.value)


def test_the_output_must_match_the_declared_task(models, tmp_path):
    spec = ultralytics_preprocess(IMGSZ, stride=16)
    with pytest.raises(ConfigError, match=r"\(1, 10\).*looks like a classifier's logits.*--task classify") as error:
        OnnxModel.open(models["classifier"], task="detect")
    assert "(1, 14, A)" in str(error.value) and "\n" not in str(error.value)
    untagged = without_metadata(models["fixed"], tmp_path / "untagged.onnx", "task")
    with pytest.raises(ConfigError, match=r"\(1, 14, 120\).*looks like a detector's raw head.*--task detect"):
        OnnxModel.open(untagged, task="classify", preprocess=spec)
    with pytest.raises(ConfigError, match=r"\(1, 14, 120\).*looks like a detector"):
        OnnxModel.open(untagged, preprocess=spec)  # no task anywhere: classify, as before detection existed
    with pytest.raises(ConfigError, match="--task classify .*disagrees with fixed.onnx's metadata.*task 'detect'"):
        OnnxModel.open(models["fixed"], task="classify", preprocess=spec)
    three = without_metadata(make_yolo_onnx(tmp_path / "three.onnx", labels=("a", "b", "c")), tmp_path / "3.onnx",
                             "names")
    with pytest.raises(ConfigError, match=r"\(1, 7, 120\) \(3 classes\).*\(1, 14, A\) for its 10 labels"):
        OnnxModel.open(three, labels=LABELS)
    segment = make_yolo_onnx(tmp_path / "segment.onnx", task="segment")
    with pytest.raises(ConfigError, match="task 'segment'"):
        OnnxModel.open(segment)


def test_a_detect_bundle_finds_the_boxes_the_original_file_finds(models, coco, tmp_path):
    model = OnnxModel.open(models["dynamic"])
    bundle = export_onnx_model(model, tmp_path / "fp32", precision=Precision.FP32, parity=ParityConfig(data=coco.val))
    manifest = Bundle.load(bundle.path).manifest
    assert manifest.task is Task.DETECT and manifest.format is Format.ONNX and manifest.detection == model.detection
    assert manifest.input.shape == (-1, 3, *IMGSZ) and manifest.outputs[0].shape == (-1, 14, CANDIDATES)
    assert manifest.source.framework == "onnx" and manifest.preprocess == model.preprocess
    parity = manifest.parity
    assert parity.task is Task.DETECT and parity.passed and parity.detection_map50 >= 0.99 and parity.max_abs_diff == 0
    assert "8 images" in parity.data
    dataset = CocoDetections.open(coco.val)
    images = [dataset.image(i) for i in range(len(dataset))]
    letterboxes = [letterbox_geometry(*image.shape[:2], manifest.preprocess) for image in images]
    source = postprocess_batch(model.reference_outputs(preprocess_batch(images, manifest.preprocess, manifest.input)),
                               manifest, letterboxes)
    with load_runtime(bundle) as runtime:
        found = runtime.detect(images)
    assert sum(len(d) for d in source) >= 8  # the model finds something to compare
    for ours, theirs in zip(found, source, strict=True):  # the same graph: the same boxes, scores and classes
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=1e-3)
        np.testing.assert_allclose(ours.scores, theirs.scores, atol=1e-6)
        np.testing.assert_array_equal(ours.class_ids, theirs.class_ids)
