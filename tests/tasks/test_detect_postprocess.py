"""Detection post-processing: hand-built raw heads with known boxes → exact detections in original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.bundle import DetectionSpec, PreprocessSpec
from edgevision.errors import ConfigError
from edgevision.preprocess import letterbox_geometry
from edgevision.tasks.detect import Detections, decode_detections, letterboxes_for, postprocess_batch
from edgevision.types import BoxFormat, ResizePolicy

INPUT = (64, 64)
LABELS = ("cat", "dog", "bird")
SQUARE = PreprocessSpec(size=INPUT, resize=ResizePolicy.LETTERBOX)
IDENTITY = letterbox_geometry(64, 64, SQUARE)  # a 64×64 image fills the input: input pixels are image pixels


def raw_head(boxes_xyxy, scores, *, box_format: BoxFormat = BoxFormat.CXCYWH, normalized: bool = False) -> np.ndarray:
    """(4 + classes, candidates) from xyxy input-pixel boxes and a (candidates, classes) score table."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if box_format is BoxFormat.CXCYWH:
        boxes = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)
    if normalized:
        boxes = boxes / np.array([INPUT[1], INPUT[0], INPUT[1], INPUT[0]])
    return np.concatenate([boxes.T, np.asarray(scores, dtype=np.float64).T]).astype(np.float32)


def spec(**overrides) -> DetectionSpec:
    return DetectionSpec(**{"output": "raw", "normalized_boxes": False, **overrides})


def decode(raw, detection: DetectionSpec | None = None, letterbox=IDENTITY, **kwargs) -> Detections:
    return decode_detections(raw, detection or spec(), letterbox, INPUT, LABELS, **kwargs)


BOXES = [[4, 4, 20, 20], [30, 8, 60, 30], [10, 40, 26, 62]]  # three separate objects
SCORES = [[0.9, 0.1, 0.0], [0.05, 0.3, 0.8], [0.2, 0.7, 0.1]]


@pytest.mark.parametrize("box_format", list(BoxFormat))
@pytest.mark.parametrize("normalized", [False, True])
def test_every_box_format_decodes_to_the_same_pixels(box_format, normalized):
    raw = raw_head(BOXES, SCORES, box_format=box_format, normalized=normalized)
    found = decode(raw, spec(box_format=box_format, normalized_boxes=normalized))
    assert len(found) == 3
    np.testing.assert_allclose(found.boxes, BOXES, atol=1e-4)  # best score first
    np.testing.assert_allclose(found.scores, [0.9, 0.8, 0.7], rtol=1e-6)  # the best class's score
    assert found.class_ids.tolist() == [0, 2, 1] and found.label_names == ("cat", "bird", "dog")
    assert found.boxes.dtype == np.float32 and found.class_ids.dtype == np.int64


def test_score_threshold_keeps_scores_at_or_above_it():
    raw = raw_head(BOXES, SCORES)
    assert decode(raw).scores.tolist() == pytest.approx([0.9, 0.8, 0.7])  # bundle default 0.25
    assert decode(raw, score_threshold=0.8).scores.tolist() == pytest.approx([0.9, 0.8])  # 0.8 itself is kept
    assert len(decode(raw, spec(score_threshold=0.95))) == 0
    with pytest.raises(ConfigError, match=r"score_threshold must be in \[0, 1\]"):
        decode(raw, score_threshold=1.5)


def test_nms_is_per_class_unless_class_agnostic():
    # Two near-identical boxes (IoU 0.81) of different classes, and a third of the first's class on top.
    boxes = [[10, 10, 40, 40], [10, 10, 40, 37], [11, 11, 40, 40]]
    scores = [[0.9, 0, 0], [0, 0.8, 0], [0.7, 0, 0]]
    per_class = decode(raw_head(boxes, scores))
    assert per_class.label_names == ("cat", "dog")  # the second cat box overlaps the first: suppressed
    agnostic = decode(raw_head(boxes, scores), spec(class_agnostic=True))
    assert agnostic.label_names == ("cat",)


def test_iou_threshold_is_the_suppression_bound():
    boxes = [[0, 0, 20, 20], [10, 0, 30, 20]]  # IoU = 200 / 600 = 1/3
    scores = [[0.9, 0, 0], [0.8, 0, 0]]
    assert len(decode(raw_head(boxes, scores), spec(iou_threshold=0.3))) == 1
    assert len(decode(raw_head(boxes, scores), spec(iou_threshold=0.4))) == 2


def test_max_detections_keeps_the_best():
    boxes = [[6 * i, 0, 6 * i + 5, 5] for i in range(10)]  # ten disjoint boxes
    scores = [[0.3 + 0.05 * i, 0, 0] for i in range(10)]
    found = decode(raw_head(boxes, scores), spec(max_detections=3))
    np.testing.assert_allclose(found.scores, [0.75, 0.7, 0.65], rtol=1e-6)
    np.testing.assert_allclose(found.boxes[0], boxes[9])


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """The textbook greedy NMS, one box at a time, as a reference."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    for i in order:
        ok = True
        for j in kept:
            ix = max(0.0, min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
            iy = max(0.0, min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
            inter = ix * iy
            if inter / (_area(boxes[i]) + _area(boxes[j]) - inter) > iou_threshold:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return kept


@pytest.mark.parametrize("seed", [0, 1])
def test_many_clustered_candidates_match_textbook_nms(seed):
    """Hundreds of candidates around a few objects (most suppressed): the staged NMS finds the same boxes."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(16, 48, (6, 2))
    jitter = rng.normal(0, 1.5, (600, 2))
    cxcy = centres[rng.integers(0, 6, 600)] + jitter
    wh = rng.uniform(6, 12, (600, 2))
    boxes = np.concatenate([cxcy - wh / 2, cxcy + wh / 2], axis=1)
    scores = np.zeros((600, 3))
    scores[np.arange(600), 0] = rng.uniform(0.3, 1.0, 600)
    detection = spec(max_detections=250, iou_threshold=0.5, class_agnostic=True)
    found = decode(raw_head(boxes, scores), detection, letterbox=letterbox_geometry(640, 640, PreprocessSpec(
        size=INPUT, resize=ResizePolicy.LETTERBOX)))  # ×10 back to the image: clipping never bites
    expected = greedy_nms(boxes.astype(np.float32), scores[:, 0].astype(np.float32), 0.5)[:250]
    assert 6 <= len(expected) < 250  # more than the first pass's 2 × max_detections candidates were needed
    np.testing.assert_allclose(found.boxes, boxes[expected] * 10, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("threshold", [0.25, 0.001])
def test_chunked_nms_equals_opencv_nms_over_every_candidate(class_agnostic, threshold):
    """Clustered candidates (mostly suppressed) above scattered ones, three classes: the same boxes as one OpenCV
    NMS over all of them, though the chunks see the clusters first and the scattered boxes against what they kept."""
    import cv2

    rng = np.random.default_rng(3)
    count = 3000
    centres = np.concatenate([rng.uniform(8, 56, (count // 2, 2)),  # scattered
                              rng.uniform(16, 48, (8, 2))[rng.integers(0, 8, count // 2)] + rng.normal(0, 0.3, (count // 2, 2))])
    wh = np.concatenate([rng.uniform(3, 14, (count // 2, 2)), rng.uniform(10, 12, (count // 2, 2))])
    boxes = np.concatenate([centres - wh / 2, centres + wh / 2], axis=1).astype(np.float32)
    scores = np.zeros((count, 3), np.float32)
    class_ids = rng.integers(0, 3, count)
    clustered = np.arange(count) >= count // 2  # scored above every scattered box: NMS must go through them all
    scores[np.arange(count), class_ids] = np.where(clustered, 0.5, 0.0) + rng.uniform(0, 0.5, count)
    detection = spec(max_detections=100, iou_threshold=0.5, class_agnostic=class_agnostic)
    found = decode(raw_head(boxes, scores), detection, letterbox=letterbox_geometry(640, 640, PreprocessSpec(
        size=INPUT, resize=ResizePolicy.LETTERBOX)), score_threshold=threshold)
    keep = np.flatnonzero(scores.max(axis=1) >= threshold)
    xywh = np.concatenate([boxes[keep, :2], boxes[keep, 2:] - boxes[keep, :2]], axis=1)
    if class_agnostic:
        reference = cv2.dnn.NMSBoxes(xywh, scores[keep].max(axis=1), 0.0, 0.5)
    else:
        reference = cv2.dnn.NMSBoxesBatched(xywh, scores[keep].max(axis=1), class_ids[keep].astype(np.int32), 0.0, 0.5)
    expected = keep[np.asarray(reference).reshape(-1)[:100]]
    assert len(found) == min(100, len(expected))
    np.testing.assert_allclose(found.boxes, np.clip(boxes[expected], 0, 64) * 10, rtol=1e-5, atol=1e-3)
    assert found.class_ids.tolist() == class_ids[expected].tolist()


def test_letterbox_inverse_on_a_non_square_image():
    # 48×96 (h×w) → scale 2/3 → 32×64 placed 16 rows down in the 64×64 input.
    letterbox = letterbox_geometry(48, 96, SQUARE)
    assert (letterbox.scale, letterbox.top, letterbox.left) == (pytest.approx(2 / 3), 16, 0)
    boxes = [[8, 24, 40, 40], [50, 10, 70, 30]]  # the second reaches into the top padding and past the edge
    found = decode(raw_head(boxes, [[0.9, 0, 0], [0, 0.8, 0]]), letterbox=letterbox)
    np.testing.assert_allclose(found.boxes, [[12, 12, 60, 36], [75, 0, 96, 21]], atol=1e-4)  # clipped to the image


def test_postprocess_batch_maps_each_image_through_its_own_letterbox():
    images = [np.zeros((48, 96, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)]
    from edgevision.bundle import Manifest

    manifest = Manifest.model_validate({
        "name": "t", "task": "detect", "format": "onnx", "precision": "fp32", "model_files": ["m.onnx"],
        "input": {"name": "images", "shape": [-1, 3, 64, 64]},
        "outputs": [{"name": "raw", "shape": [-1, 7, 1], "meaning": "boxes_scores"}],
        "num_classes": 3, "labels": list(LABELS), "preprocess": SQUARE.model_dump(),
        "detection": spec().model_dump(), "source": {"sha256": "0" * 64},
    })
    raw = np.stack([raw_head([[8, 24, 40, 40]], [[0.9, 0, 0]])] * 2)
    first, second = postprocess_batch(raw, manifest, letterboxes_for(images, manifest.preprocess))
    np.testing.assert_allclose(first.boxes, [[12, 12, 60, 36]], atol=1e-4)
    np.testing.assert_allclose(second.boxes, [[8, 24, 40, 40]], atol=1e-4)
    with pytest.raises(ConfigError, match="one letterbox each"):
        postprocess_batch(raw, manifest, letterboxes_for(images[:1], manifest.preprocess))
    classify = Manifest.model_validate({**manifest.model_dump(), "task": "classify", "detection": None})
    with pytest.raises(ConfigError, match="is a classify model.*predict"):
        postprocess_batch(raw, classify, letterboxes_for(images, manifest.preprocess))


def test_empty_outputs_give_empty_detections():
    nothing = decode(raw_head(BOXES, np.zeros((3, 3))))
    assert len(nothing) == 0 and nothing.boxes.shape == (0, 4) and nothing.to_dicts() == []
    no_candidates = decode(np.zeros((7, 0), np.float32))
    assert len(no_candidates) == 0 and no_candidates.counts() == {}


def test_broken_boxes_are_dropped_not_fatal():
    boxes = [[4, 4, 20, 20], [30, 8, 60, 30]]
    raw = raw_head(boxes, [[0.9, 0, 0], [0.8, 0, 0]])
    raw[0, 1] = np.nan
    raw[2, 0] = -5.0  # negative width
    assert len(decode(raw)) == 0


def test_a_head_of_the_wrong_shape_says_what_was_expected():
    raw = raw_head(BOXES, SCORES)
    with pytest.raises(ConfigError, match=r"\(7, A\).*transposed"):
        decode(raw.T)
    with pytest.raises(ConfigError, match="labels match"):
        decode(raw[:6])


def test_detections_validate_and_serialise():
    found = Detections([[1, 2, 3, 4]], [0.5], [1], LABELS)
    assert found.to_dicts() == [{"box": [1.0, 2.0, 3.0, 4.0], "score": 0.5, "class_id": 1, "label": "dog"}]
    assert found.counts() == {"dog": 1} and len(found) == 1
    with pytest.raises(ValueError):
        found.boxes[0, 0] = 9  # read-only
    with pytest.raises(ConfigError, match="one score and one class id per box"):
        Detections([[1, 2, 3, 4]], [0.5, 0.6], [1], LABELS)
    with pytest.raises(ConfigError, match="right >= left"):
        Detections([[3, 2, 1, 4]], [0.5], [1], LABELS)
    with pytest.raises(ConfigError, match=r"scores must be in \[0, 1\]"):
        Detections([[1, 2, 3, 4]], [1.5], [1], LABELS)
    with pytest.raises(ConfigError, match="index the 3 labels"):
        Detections([[1, 2, 3, 4]], [0.5], [3], LABELS)


# -- through a real bundle and engine -------------------------------------------------------------


@pytest.fixture(scope="module")
def detect_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from tests.tasks.detect_bundle import write_detect_bundle

    return write_detect_bundle(tmp_path_factory.mktemp("detect") / "grid")


def test_runtime_detect_returns_boxes_in_original_pixels(detect_bundle):
    from edgevision.runtimes import load_runtime
    from tests.tasks.detect_bundle import BLUE_BOX, RED_BOX, painted_frame

    frame = painted_frame()
    with load_runtime(detect_bundle) as runtime:
        found, blank = runtime.detect([frame, np.zeros((30, 40, 3), np.uint8)])
        rgb = runtime.detect([frame[..., ::-1].copy()], image_order="RGB")[0]
    assert found.label_names == ("red", "blue") or found.label_names == ("blue", "red")
    by_label = dict(zip(found.label_names, found.boxes.tolist()))
    np.testing.assert_allclose(by_label["red"], RED_BOX, atol=1e-3)
    np.testing.assert_allclose(by_label["blue"], BLUE_BOX, atol=1e-3)
    assert (found.scores > 0.99).all() and len(blank) == 0
    np.testing.assert_allclose(rgb.boxes, found.boxes)


def test_runtime_detect_steps_can_be_timed_apart(detect_bundle):
    """The documented split (preprocess, infer_outputs, postprocess_batch) gives what detect() gives."""
    from edgevision.preprocess import preprocess_batch
    from edgevision.runtimes import load_runtime
    from tests.tasks.detect_bundle import painted_frame

    manifest = detect_bundle.manifest
    images = [painted_frame()]
    with load_runtime(detect_bundle) as runtime:
        raw = runtime.infer_outputs(preprocess_batch(images, manifest.preprocess, runtime.input_spec))
        steps = postprocess_batch(raw[manifest.detection.output], manifest, letterboxes_for(images, manifest.preprocess))
        direct = runtime.detect(images)
    np.testing.assert_array_equal(steps[0].boxes, direct[0].boxes)


def test_a_classify_bundle_asked_to_detect_says_use_predict(detect_bundle, tmp_path):
    import shutil

    from edgevision.bundle import Bundle, write_manifest
    from edgevision.runtimes import load_runtime

    directory = tmp_path / "as_classifier"
    shutil.copytree(detect_bundle.path, directory)
    manifest = detect_bundle.manifest.model_dump()
    manifest.update(task="classify", detection=None)
    write_manifest(directory, type(detect_bundle.manifest).model_validate(manifest))
    with load_runtime(Bundle.load(directory)) as runtime, pytest.raises(ConfigError, match="classify model.*predict"):
        runtime.detect([np.zeros((8, 8, 3), np.uint8)])


def test_detect_and_its_metric_run_with_torch_blocked(detect_bundle):
    """A device has numpy, OpenCV, one engine (and pycocotools for mAP): no torch anywhere on this path."""
    from tests.blocking import run_blocked

    result = run_blocked(
        f"""
        import sys, edgevision
        from edgevision.metrics.detection import agreement_map50
        from tests.tasks.detect_bundle import painted_frame
        with edgevision.load_runtime({str(detect_bundle.path)!r}, threads=1) as runtime:
            found = runtime.detect([painted_frame()])
        print(len(found[0]), agreement_map50(found, found, [painted_frame().shape[:2]]))
        assert "torch" not in sys.modules
        """,
        blocked=("torch", "torchvision"),
    )
    assert result.returncode == 0, result.stderr
    count, agreement = result.stdout.split()
    assert count == "2" and float(agreement) == pytest.approx(1.0)


def test_boxes_wholly_inside_the_letterbox_padding_are_dropped():
    """They clip to zero area in the frame: nobody sees them, and COCO cannot match them even to themselves."""
    import numpy as np

    from edgevision.bundle import DetectionSpec, PreprocessSpec
    from edgevision.preprocess import letterbox_geometry
    from edgevision.tasks.detect import decode_detections
    from edgevision.types import ResizePolicy

    spec = PreprocessSpec(size=(64, 64), resize=ResizePolicy.LETTERBOX, stride=16, mean=(0, 0, 0), std=(1, 1, 1))
    letterbox = letterbox_geometry(32, 64, spec)  # the picture fills rows 16..48 of the input
    raw = np.array([[32, 8, 10, 10, 0.9], [32, 32, 10, 10, 0.8]], dtype=np.float32).T  # cxcywh px, one class
    found = decode_detections(raw, DetectionSpec(output="o", normalized_boxes=False), letterbox, (64, 64), ("x",))
    assert len(found) == 1 and found.scores[0] == np.float32(0.8)


def test_per_class_nms_without_nmsboxesbatched_gives_the_same_boxes(monkeypatch):
    """Raspberry Pi OS's apt OpenCV (4.6) has no cv2.dnn.NMSBoxesBatched: the offset fallback must agree."""
    import numpy as np

    from edgevision.tasks import detect

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 300, size=(400, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(10, 80, size=(400, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(0.3, 1.0, 400).astype(np.float32)
    classes = rng.integers(0, 5, 400)
    with_batched = detect._nms(boxes, scores, classes, iou_threshold=0.5, class_agnostic=False)
    monkeypatch.delattr(detect.cv2.dnn, "NMSBoxesBatched")
    without = detect._nms(boxes, scores, classes, iou_threshold=0.5, class_agnostic=False)
    assert sorted(without.tolist()) == sorted(with_batched.tolist()) and len(without) > 50
