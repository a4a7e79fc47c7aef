"""Segmentation on the device: raw per-pixel scores → a class per pixel of the original frame."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision import errors
from edgevision.bundle import Manifest, SegmentationSpec
from edgevision.preprocess import letterbox_geometry
from edgevision.runtimes import load_runtime
from edgevision.tasks.segment import SegmentationMask, decode_mask, postprocess_masks
from edgevision.types import SegmentationLayout
from tests.tasks.segment_bundle import LABELS, expected_mask, painted_frame, write_segment_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    return write_segment_bundle(tmp_path_factory.mktemp("seg") / "bundle")


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_runtime_segment_maps_masks_onto_each_frame(bundle, scale):
    with load_runtime(bundle, "onnxruntime") as runtime:
        (mask,) = runtime.segment([painted_frame(scale)])
    assert mask.shape == (48 * scale, 96 * scale)
    assert np.array_equal(mask.class_ids, expected_mask(scale))
    assert mask.area_fractions() == pytest.approx({"red": 1 / 8, "blue": 1 / 8})
    assert set(mask.area_fractions(include_background=True)) == {"background", "red", "blue"}
    assert mask.binary("red").sum() == 24 * 24 * scale * scale
    assert mask.to_dict()["area_fractions"] == {"red": 0.125, "blue": 0.125}


def test_a_batch_of_differently_sized_frames(bundle):
    frames = [painted_frame(1), painted_frame(2)]
    with load_runtime(bundle, "onnxruntime") as runtime:
        masks = runtime.segment(frames)
    assert [m.shape for m in masks] == [(48, 96), (96, 192)]
    assert np.array_equal(masks[1].class_ids, expected_mask(2))


def test_class_ids_layout_decodes_the_same(bundle):
    manifest: Manifest = bundle.manifest
    spec = SegmentationSpec(output="scores", layout=SegmentationLayout.CLASS_IDS)
    ids = np.zeros((16, 16), np.int64)
    ids[4:8, 8:12] = 1  # model-input rows 16..32, cols 32..48 → frame y 0..24, x 48..72: the red square
    box = letterbox_geometry(48, 96, manifest.preprocess)
    mask = decode_mask(ids, spec, box, (64, 64), LABELS)
    assert np.array_equal(mask.binary("red"), expected_mask(1) == 1)


def test_wrong_shapes_and_tasks_get_one_clear_error(bundle, tmp_path):
    box = letterbox_geometry(48, 96, bundle.manifest.preprocess)
    with pytest.raises(errors.ConfigError, match="channels-last"):
        decode_mask(np.zeros((16, 16, 3)), bundle.manifest.segmentation, box, (64, 64), LABELS)
    with pytest.raises(errors.ConfigError, match="one whole stride"):
        decode_mask(np.zeros((3, 15, 16)), bundle.manifest.segmentation, box, (64, 64), LABELS)
    with pytest.raises(errors.ConfigError, match="one letterbox each"):
        postprocess_masks(np.zeros((2, 3, 16, 16)), bundle.manifest, [box])
    from tests.tasks.detect_bundle import write_detect_bundle

    detect = write_detect_bundle(tmp_path / "det")
    with load_runtime(detect, "onnxruntime") as runtime, pytest.raises(errors.ConfigError, match="no per-pixel classes"):
        runtime.segment([painted_frame()])


def test_mask_validation():
    with pytest.raises(errors.ConfigError, match="index the 3 labels"):
        SegmentationMask(np.full((2, 2), 3), LABELS)
    with pytest.raises(errors.ConfigError, match="integer class ids"):
        SegmentationMask(np.zeros((2, 2), np.float32), LABELS)
    mask = SegmentationMask(np.zeros((2, 2), np.int64), LABELS)
    assert mask.class_ids.dtype == np.uint8 and not mask.class_ids.flags.writeable
    assert mask.area_fractions() == {} and "background only" in repr(mask)
    with pytest.raises(errors.ConfigError, match="No class 'green'"):
        mask.binary("green")


def test_manifest_checks_the_segmentation_section(bundle):
    data = bundle.manifest.model_dump()
    with pytest.raises(ValueError, match="needs `segmentation`"):
        Manifest.model_validate({**data, "segmentation": None})
    with pytest.raises(ValueError, match="not among the outputs"):
        Manifest.model_validate({**data, "segmentation": {**data["segmentation"], "output": "nope"}})
    with pytest.raises(ValueError, match="background_class 7"):
        Manifest.model_validate({**data, "segmentation": {**data["segmentation"], "background_class": 7}})
    with pytest.raises(ValueError, match="only for task segment"):
        Manifest.model_validate({**data, "task": "classify"})
