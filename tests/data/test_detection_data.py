"""The generated detection data set and the COCO split reader."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision import errors
from edgevision.data import detection
from edgevision.data.coco import CocoDetections, DetectionTarget
from edgevision.data.detection import LABELS, SPLITS, make_detection_dataset

COUNTS = (24, 8, 8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return make_detection_dataset(tmp_path_factory.mktemp("det") / "data", seed=0, counts=COUNTS)


def _coco(split_dir: Path) -> dict:
    return json.loads((split_dir / "annotations.json").read_text())


def _box_iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def test_splits_have_the_asked_counts_and_coco_layout(tiny):
    assert tiny.labels == LABELS == tuple(str(d) for d in range(10))
    for part, count in zip(SPLITS, COUNTS, strict=True):
        coco = _coco(getattr(tiny, part))
        assert len(coco["images"]) == count == len(list((getattr(tiny, part) / "images").glob("*.png")))
        assert coco["categories"] == [{"id": k + 1, "name": str(k)} for k in range(10)]
        assert [im["file_name"] for im in coco["images"]] == [f"{i:06d}.png" for i in range(count)]
        for image in coco["images"]:
            assert (image["width"], image["height"]) == (320, 240)
        per_image = np.bincount([a["image_id"] for a in coco["annotations"]], minlength=count + 1)[1:]
        assert per_image.min() >= 1 and per_image.max() <= 6, per_image
        for a in coco["annotations"]:
            assert set(a) >= {"id", "image_id", "category_id", "bbox", "area", "iscrowd"} and a["iscrowd"] == 0
            assert 1 <= a["category_id"] <= 10 and a["area"] == a["bbox"][2] * a["bbox"][3]


def test_no_digit_sample_or_background_region_is_shared_between_splits(tiny):
    pools = {part: set(_coco(getattr(tiny, part))["info"]["digit_indices"]) for part in SPLITS}
    used = {part: {a["digit_index"] for a in _coco(getattr(tiny, part))["annotations"]} for part in SPLITS}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not pools[a] & pools[b] and not used[a] & used[b]
    assert len(set.union(*pools.values())) == 1797
    for part in SPLITS:
        assert used[part] <= pools[part]
    regions = json.loads((tiny.root / "detection.json").read_text())["background_regions_xyxy"]
    for photo in ("china.jpg", "flower.jpg"):
        rects = [regions[part][photo] for part in SPLITS]
        for i, a in enumerate(rects):
            for b in rects[i + 1:]:
                assert min(a[2], b[2]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[1], b[1]), (photo, a, b)
    for part in SPLITS:  # every crop lies inside its own split's region
        for image in _coco(getattr(tiny, part))["images"]:
            x, y, w, h = image["background"]["crop_xywh"]
            x0, y0, x1, y1 = regions[part][image["background"]["photo"]]
            assert x0 <= x and y0 <= y and x + w <= x1 and y + h <= y1, (part, image)


def test_digit_split_is_the_classification_demo_split(tiny, tmp_path):
    """A detector whose backbone starts from the digits classifier never saw a test digit through it either."""
    from edgevision.data.digits import make_digits_folder

    folders = make_digits_folder(tmp_path / "digits", size=8)
    for part in SPLITS:
        in_folder = {int(p.stem) for p in getattr(folders, part).rglob("*.png")}
        assert in_folder == set(_coco(getattr(tiny, part))["info"]["digit_indices"]), part


def test_boxes_are_tight_around_the_visible_ink_and_overlap_at_most_max_iou(tiny):
    photos = dict(detection._photos())
    coco = _coco(tiny.train)
    overlapping = 0
    for image in coco["images"]:
        painted = cv2.imread(str(tiny.train / "images" / image["file_name"])).astype(np.int16)
        x, y, w, h = image["background"]["crop_xywh"]
        background = cv2.resize(photos[image["background"]["photo"]][y:y + h, x:x + w], (320, 240),
                                interpolation=cv2.INTER_LINEAR)
        if image["background"]["flipped"]:
            background = background[:, ::-1]
        ink = np.abs(painted - background.astype(np.int16)).max(axis=2)
        boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]]
        covered = np.zeros(ink.shape, bool)
        for bx, by, bw, bh in boxes:
            assert bw > 0 and bh > 0 and bx >= 0 and by >= 0 and bx + bw <= 320 and by + bh <= 240
            covered[by:by + bh, bx:bx + bw] = True
            inside = ink[by:by + bh, bx:bx + bw] > 15  # a faint edge (alpha < 0.06) changes a pixel by less
            # tight: ink reaches every edge of the box (a padded 8×8 cell would leave empty edges)
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
        # ink below the box threshold (alpha 0.3) changes a pixel by at most 0.3 × 255 alone, a little more where
        # two digits' faint edges meet; solid ink (alpha near 1, >= 100 luma levels of contrast) is always boxed
        assert not (ink[~covered] > 110).any(), "solid ink outside every box"
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                iou = _box_iou(a, b)
                assert iou <= 0.3 + 1e-9
                overlapping += iou > 0
    assert overlapping > 0, "no two digits overlap anywhere: overlap is part of the task"


def test_generation_is_deterministic_reused_and_seed_dependent(tiny, tmp_path):
    again = make_detection_dataset(tmp_path / "again", seed=0, counts=COUNTS)
    for part in SPLITS:
        assert _coco(getattr(again, part)) == _coco(getattr(tiny, part))
        first = cv2.imread(str(getattr(tiny, part) / "images" / "000003.png"))
        assert np.array_equal(first, cv2.imread(str(getattr(again, part) / "images" / "000003.png")))
    stamp = again.root / "detection.json"
    written = stamp.stat().st_mtime_ns
    assert make_detection_dataset(tmp_path / "again", seed=0, counts=COUNTS) == again
    assert stamp.stat().st_mtime_ns == written  # same settings: reused, not rewritten
    other = make_detection_dataset(tmp_path / "again", seed=1, counts=COUNTS)  # new settings: rewritten
    assert _coco(other.test)["annotations"] != _coco(tiny.test)["annotations"]
    assert sorted(p.name for p in other.root.iterdir()) == [".lock", "detection.json", "test", "train", "val"]


def test_an_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def broken(self, background):
        calls.append(1)
        if len(calls) > 5:
            raise KeyboardInterrupt
        return original(self, background)

    original = detection._Painter.paint
    monkeypatch.setattr(detection._Painter, "paint", broken)
    with pytest.raises(KeyboardInterrupt):
        make_detection_dataset(tmp_path / "data", counts=COUNTS)
    assert [p.name for p in (tmp_path / "data").iterdir()] == [".lock"]


def test_two_callers_at_once_get_one_complete_data_set(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: make_detection_dataset(tmp_path, counts=(3, 2, 2)), range(2)))
    assert results[0] == results[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "detection.json", "test", "train", "val"]
    assert len(CocoDetections.open(results[0].train)) == 3


@pytest.mark.parametrize("image_size", [(256, 256), (320, 240), (96, 400)])
def test_other_image_sizes(tmp_path, image_size):
    splits = make_detection_dataset(tmp_path, counts=(2, 1, 1), image_size=image_size, object_height=(16, 40))
    data = CocoDetections.open(splits.test)
    image, target = next(iter(data))
    assert image.shape == (*image_size, 3) and (target.height, target.width) == image_size
    assert len(target.class_ids) >= 1


@pytest.mark.parametrize("bad", [{"counts": (0, 1, 1)}, {"image_size": (16, 16)}, {"object_height": (24, 200)},
                                 {"objects_per_image": (3, 2)}, {"max_iou": 1.0}, {"test_fraction": 0.9}])
def test_bad_settings_are_config_errors(tmp_path, bad):
    with pytest.raises(errors.ConfigError):
        make_detection_dataset(tmp_path, **bad)


def test_annotations_load_in_pycocotools(tiny):
    coco_module = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed (edgevision's "
                                      "detection metric extra); the COCO file is then checked by CocoDetections only")
    coco = coco_module.COCO(str(tiny.test / "annotations.json"))
    assert len(coco.getImgIds()) == COUNTS[2]
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(LABELS)
    from pycocotools.cocoeval import COCOeval

    truth = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
             for a in coco.dataset["annotations"]]
    evaluator = COCOeval(coco, coco.loadRes(truth), "bbox")  # the ground truth as detections scores a perfect 1
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0) and evaluator.stats[1] == pytest.approx(1.0)


def test_coco_detections_reads_our_split(tiny):
    data = CocoDetections.open(tiny.test, labels=LABELS)
    coco = _coco(tiny.test)
    assert len(data) == COUNTS[2] and data.labels == LABELS and data.annotation_path == tiny.test / "annotations.json"
    assert data.image_ids == tuple(range(1, COUNTS[2] + 1))
    image, target = next(iter(data))
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert isinstance(target, DetectionTarget) and (target.width, target.height) == (320, 240)
    first = [a for a in coco["annotations"] if a["image_id"] == 1]
    assert target.boxes_xyxy.dtype == np.float32 and target.class_ids.dtype == np.int64
    np.testing.assert_array_equal(target.boxes_xyxy, [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in first)])
    np.testing.assert_array_equal(target.class_ids, [a["category_id"] - 1 for a in first])
    assert sum(len(t.class_ids) for t in data.targets) == len(coco["annotations"])
    batches = list(data.batches(3))
    assert [len(images) for images, _ in batches] == [3, 3, 2]
    assert [t.image_id for _, targets in batches for t in targets] == list(data.image_ids)
    assert np.array_equal(batches[1][0][0], data.image(3))
    assert data.subset(3).image_ids == (1, 2, 3)
    seeded = data.subset(3, seed=7)
    assert seeded.image_ids == data.subset(3, seed=7).image_ids and list(seeded.image_ids) == sorted(seeded.image_ids)
    assert {a["image_id"] for a in seeded.coco_dict()["annotations"]} <= set(seeded.image_ids)
    assert CocoDetections.open(tiny.test / "annotations.json").labels == LABELS


def _small_coco(root: Path) -> Path:
    """A hand-written two-image COCO split (Roboflow-style: images beside the JSON), ids not starting at 1."""
    root.mkdir()
    for name, (h, w) in (("a.png", (20, 30)), ("b.jpg", (40, 50))):
        cv2.imwrite(str(root / name), np.full((h, w, 3), 200, np.uint8))
    coco = {
        "images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20},
                   {"id": 9, "file_name": "b.jpg", "width": 50, "height": 40}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [1, 2, 10, 5], "area": 50, "iscrowd": 0},
                        {"id": 2, "image_id": 9, "category_id": 3, "bbox": [0, 0, 50.5, 40], "area": 2020, "iscrowd": 0},
                        {"id": 3, "image_id": 9, "category_id": 3, "bbox": [5, 5, 5, 5], "area": 25, "iscrowd": 1}],
        "categories": [{"id": 5, "name": "cat"}, {"id": 3, "name": "dog"}],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(coco))
    return path


def test_coco_detections_reads_any_coco_file(tmp_path):
    data = CocoDetections.open(_small_coco(tmp_path / "s"))
    assert data.labels == ("dog", "cat")  # by sorted category id
    assert data.category_ids == (3, 5)
    assert [t.class_ids.tolist() for t in data.targets] == [[1], [0]]  # the crowd box is not a target
    assert data.image(1).shape == (40, 50, 3)
    coco = data.subset(1).coco_dict()
    assert [im["id"] for im in coco["images"]] == [7] and [a["id"] for a in coco["annotations"]] == [1]


def test_coco_dict_fills_a_missing_area_for_the_evaluator(tmp_path):
    path = _small_coco(tmp_path / "s")
    raw = json.loads(path.read_text())
    del raw["annotations"][0]["area"]
    path.write_text(json.dumps(raw))
    assert CocoDetections.open(path).coco_dict()["annotations"][0]["area"] == 50.0


def _break(path: Path, how: str) -> None:
    coco = json.loads(path.read_text())
    if how == "not json":
        path.write_text("{ images: oops")
        return
    if how == "missing image":
        (path.parent / "b.jpg").unlink()
    elif how == "undecodable image":
        (path.parent / "b.jpg").write_bytes(b"not an image")
    elif how == "wrong size":
        coco["images"][0]["width"] = 31
    elif how == "bbox outside":
        coco["annotations"][0]["bbox"] = [25, 2, 10, 5]
    elif how == "bbox empty":
        coco["annotations"][0]["bbox"] = [1, 2, 0, 5]
    elif how == "unknown category":
        coco["annotations"][1]["category_id"] = 4
    elif how == "unknown image":
        coco["annotations"][1]["image_id"] = 8
    elif how == "repeated annotation id":
        coco["annotations"][1]["id"] = 1
    elif how == "no categories key":
        del coco["categories"]
    path.write_text(json.dumps(coco))


@pytest.mark.parametrize(("how", "says"), [
    ("not json", "not valid JSON"),
    ("missing image", "b.jpg does not exist"),
    ("undecodable image", "cannot be decoded"),
    ("wrong size", "says 31×20 but the file is 30×20"),
    ("bbox outside", "outside its image a.png"),
    ("bbox empty", "non-positive width or height"),
    ("unknown category", "category_id 4"),
    ("unknown image", "image_id 8"),
    ("repeated annotation id", "annotations[1] has id 1, missing or used before"),
    ("no categories key", "no 'categories' list"),
])
def test_each_broken_coco_file_is_one_clear_data_error(tmp_path, how, says):
    path = _small_coco(tmp_path / "s")
    _break(path, how)
    with pytest.raises(errors.DataError) as caught:
        CocoDetections.open(path)
    message = str(caught.value)
    assert says in message and str(path) in message and "\n" not in message, message


def test_labels_that_do_not_match_the_categories_are_refused(tmp_path):
    path = _small_coco(tmp_path / "s")
    with pytest.raises(errors.DataError, match=r"categories \(by id\) are \['dog', 'cat'\]"):
        CocoDetections.open(path, labels=("cat", "dog"))
    with pytest.raises(errors.DataError, match="does not exist"):
        CocoDetections.open(tmp_path / "nowhere")
    with pytest.raises(errors.DataError, match="does not exist"):
        CocoDetections.open(path, images_dir=tmp_path / "no-images")


def test_masks_mark_the_same_ink_as_the_boxes(tiny):
    from edgevision.data.masks import MaskFolder

    for part in SPLITS:
        folder = MaskFolder.open(getattr(tiny, part))
        assert folder.labels == ("background", *LABELS)
        coco = _coco(getattr(tiny, part))
        assert len(folder) == len(coco["images"])
        for index, (image, mask) in enumerate(folder):
            assert mask.shape == image.shape[:2] == (240, 320)
            boxes = [a for a in coco["annotations"] if a["image_id"] == index + 1]
            inside_some_box = np.zeros(mask.shape, bool)
            for a in boxes:
                x, y, w, h = a["bbox"]
                window = mask[y:y + h, x:x + w]
                assert (window == a["category_id"]).any(), "every digit keeps some pixels in the mask"
                inside_some_box[y:y + h, x:x + w] |= window == a["category_id"]
            assert np.array_equal(inside_some_box, mask > 0), "each labelled pixel lies in a box of its class"


def test_mask_folder_errors_name_the_problem(tmp_path, tiny):
    import shutil

    from edgevision.data.masks import MaskFolder

    with pytest.raises(errors.DataError, match="does not exist"):
        MaskFolder.open(tmp_path / "nope")
    split = tmp_path / "split"
    shutil.copytree(tiny.val, split)
    (split / "masks" / "000003.png").unlink()
    with pytest.raises(errors.DataError, match="000003.png has no mask"):
        MaskFolder.open(split)
    cv2.imwrite(str(split / "masks" / "000003.png"), np.full((240, 320), 11, np.uint8))
    with pytest.raises(errors.DataError, match="class id 11"):
        MaskFolder.open(split).mask(3)
    cv2.imwrite(str(split / "masks" / "000003.png"), np.zeros((240, 320, 3), np.uint8))
    with pytest.raises(errors.DataError, match="one channel of uint8"):
        MaskFolder.open(split).mask(3)
    (split / "labels.txt").write_text("background\n")
    with pytest.raises(errors.DataError, match="at least two distinct"):
        MaskFolder.open(split)
