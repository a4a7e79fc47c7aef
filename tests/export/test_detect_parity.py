"""Detection parity: a torch detector exported to ONNX and OpenVINO is compared by its detections.

The detector is tiny and random (a few convs, a raw [N, 4 + C, A] head: normalised cxcywh + sigmoid
scores); the validation split is a handful of COCO-annotated images written here. What is checked is the
mechanism: same post-processing on both sides, agreement mAP50 in the manifest, and an export that moves
its boxes is refused with both numbers named and nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("pycocotools")

from edgevision import errors
from edgevision.bundle import DetectionSpec, PreprocessSpec
from edgevision.export import ParityConfig, check_parity, export
from edgevision.export.parity_detect import MIN_DETECTION_MAP50
from edgevision.model import TrainedModel
from edgevision.source import ModelSource
from edgevision.types import Format, Precision, ResizePolicy, Task

LABELS = ["disc", "bar", "ring"]
SIZE, STRIDE = 64, 8
#: (height, width) of the validation images: none square, so the letterbox pads and maps back.
IMAGE_SIZES = [(48, 80), (80, 60), (64, 96), (72, 72), (40, 64), (96, 80), (56, 88), (64, 48)]


class TinyDetector(torch.nn.Module):
    """Three stride-2 convs and a 1×1 head: one candidate per cell of an 8×8 grid, as real detectors decode.

    Box centre = (cell + sigmoid) / 8, size = sigmoid × 0.3 (fractions of the input), three sigmoid
    scores spread away from the 0.25 threshold. `shift_exported_boxes` moves every box right by 0.2 of
    the input width, only while being exported to ONNX: an export that no longer matches its source
    (the failure parity must catch).
    """

    def __init__(self, *, shift_exported_boxes: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        conv = torch.nn.Conv2d
        self.features = torch.nn.Sequential(
            conv(3, 8, 3, 2, 1), torch.nn.ReLU(), conv(8, 16, 3, 2, 1), torch.nn.ReLU(), conv(16, 16, 3, 2, 1),
            torch.nn.ReLU(),
        )
        self.head = conv(16, 4 + len(LABELS), 1)
        with torch.no_grad():
            self.head.weight[4:] *= 6.0
        cells = SIZE // STRIDE
        rows, cols = torch.meshgrid(torch.arange(float(cells)), torch.arange(float(cells)), indexing="ij")
        self.register_buffer("cell", torch.stack([cols.reshape(-1), rows.reshape(-1)]).unsqueeze(0) / cells)
        self.cells = cells
        self.shift_exported_boxes = shift_exported_boxes

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.features(images)).flatten(2)
        centres = self.cell + torch.sigmoid(raw[:, :2]) / self.cells
        sizes = torch.sigmoid(raw[:, 2:4]) * 0.3
        if self.shift_exported_boxes and torch.onnx.is_in_onnx_export():
            centres = centres + torch.tensor([0.2, 0.0]).view(1, 2, 1)
        return torch.cat([centres, sizes, torch.sigmoid(raw[:, 4:])], dim=1)


def _detector(**kwargs: bool) -> TrainedModel:
    preprocess = PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=STRIDE)
    return TrainedModel(
        module=TinyDetector(**kwargs), labels=list(LABELS), preprocess=preprocess, name="tiny_detector",
        task=Task.DETECT, detection=DetectionSpec(output="raw", normalized_boxes=True, strides=(STRIDE,)),
    )


@pytest.fixture(scope="module")
def detector() -> TrainedModel:
    return _detector()


@pytest.fixture(scope="module")
def coco_val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO split: noisy images with a bright rectangle each, one annotation per rectangle."""
    import cv2

    root = tmp_path_factory.mktemp("coco_val")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for index, (height, width) in enumerate(IMAGE_SIZES, start=1):
        pixels = rng.integers(0, 120, size=(height, width, 3), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
        w, h = int(rng.integers(8, width // 2)), int(rng.integers(8, height // 2))
        pixels[y0 : y0 + h, x0 : x0 + w] = rng.integers(150, 256, size=3, dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{index}.png"), pixels)
        images.append({"id": index, "file_name": f"{index}.png", "width": width, "height": height})
        annotations.append({"id": index, "image_id": index, "category_id": index % len(LABELS) + 1,
                            "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(LABELS)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return root


def test_a_torch_detector_is_a_model_source(detector: TrainedModel) -> None:
    assert isinstance(detector, ModelSource) and detector.framework == "torch"
    raw = detector.reference_outputs(np.zeros((2, 3, SIZE, SIZE), np.float32))
    assert raw.shape == (2, 4 + len(LABELS), (SIZE // STRIDE) ** 2)


@pytest.mark.parametrize(("fmt", "precision"), [
    (Format.ONNX, Precision.FP32), (Format.ONNX, Precision.FP16),
    (Format.OPENVINO, Precision.FP32), (Format.OPENVINO, Precision.FP16),
])
def test_detect_bundles_record_detection_parity(detector, coco_val, tmp_path, fmt, precision) -> None:
    bundle = export(detector, tmp_path / "b", format=fmt, precision=precision, parity=ParityConfig(data=coco_val))
    manifest = bundle.manifest
    assert manifest.task is Task.DETECT and manifest.source.framework == "torch"
    assert manifest.outputs[0].meaning == "boxes_scores" and manifest.outputs[0].shape == (-1, 7, 64)
    assert manifest.detection.output == manifest.outputs[0].name
    parity = manifest.parity
    assert parity.passed and parity.task is Task.DETECT and parity.samples == len(IMAGE_SIZES)
    assert parity.min_detection_map50 == MIN_DETECTION_MAP50[precision]
    assert parity.detection_map50 >= parity.min_detection_map50
    assert parity.top1_agreement == parity.detection_map50  # the same number, so `passed` reads alike per task
    found = int(parity.data.split(", ")[-1].split()[0])
    assert found >= 10 * len(IMAGE_SIZES), parity.data  # the source found many boxes: the agreement is not vacuous
    if precision is Precision.FP32:
        assert parity.max_abs_diff < 1e-4


def test_random_inputs_without_data(detector, tmp_path) -> None:
    parity = export(detector, tmp_path / "b", format="onnx").manifest.parity
    assert parity.passed and parity.data.startswith("random (16 samples") and parity.task is Task.DETECT


def test_an_export_whose_boxes_moved_fails_and_writes_nothing(coco_val, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(errors.ParityError) as caught:
        export(_detector(shift_exported_boxes=True), out / "b", format="onnx", parity=ParityConfig(data=coco_val))
    message = str(caught.value)
    assert "onnx fp32 bundle failed parity: detection agreement mAP50 " in message
    assert "(need ≥ 0.9900)" in message and "max |Δ raw output| 0.2" in message and "Nothing was written" in message
    assert float(message.split("mAP50 ")[1].split()[0]) < 0.5
    assert list(out.iterdir()) == []


def test_check_parity_compares_a_bundle_to_another_source(detector, coco_val, tmp_path) -> None:
    """The entry point takes any ModelSource: the same bundle against a different (shifted) model fails."""
    bundle = export(detector, tmp_path / "b", format="onnx", parity=ParityConfig(data=coco_val))
    other = _detector()
    with torch.no_grad():
        other.module.head.bias[:2] += 1.0  # centres pushed towards the bottom-right corner
    report = check_parity(other, bundle, ParityConfig(data=coco_val))
    assert not report.passed and report.task is Task.DETECT
    assert report.detection_map50 < report.min_detection_map50 == MIN_DETECTION_MAP50[Precision.FP32]


def test_parity_in_small_batches_is_the_same(detector, coco_val, tmp_path, monkeypatch) -> None:
    """The split is read a batch at a time (memory); the report must not depend on the batch size."""
    from edgevision.export import parity_detect

    bundle = export(detector, tmp_path / "b", format="onnx", parity=ParityConfig(data=coco_val))
    monkeypatch.setattr(parity_detect, "PARITY_BATCH", 3)
    report = check_parity(detector, bundle, ParityConfig(data=coco_val))
    assert report.model_dump(exclude={"mean_abs_diff"}) == bundle.manifest.parity.model_dump(exclude={"mean_abs_diff"})
    assert report.mean_abs_diff == pytest.approx(bundle.manifest.parity.mean_abs_diff)


def test_a_broken_split_fails_before_anything_is_exported(detector, tmp_path) -> None:
    (tmp_path / "val").mkdir()
    with pytest.raises(errors.DataError):
        export(detector, tmp_path / "b", format="onnx", parity=ParityConfig(data=tmp_path / "val"))
    assert not (tmp_path / "b").exists()


def test_the_accuracy_guard_measures_map_for_a_detector(detector, coco_val, tmp_path) -> None:
    from edgevision.compress.guard import check_accuracy

    bundle = export(detector, tmp_path / "b", format="onnx")
    report = check_accuracy(detector, bundle, validation=coco_val, max_accuracy_drop=0.01)
    assert report.metric == "mAP50-95" and report.original == pytest.approx(report.compressed, abs=1e-6)
    assert "mAP50-95" in report.summary()
