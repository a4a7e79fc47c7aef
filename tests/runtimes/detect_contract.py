"""What every runtime must do with a detect bundle. Each engine's test module subclasses `DetectRuntimeContract`.

The bundle is the grid detector (tests/runtimes/grid_detector.py) exported through `edgevision.export`
with detection parity on a painted COCO split, so every engine must find exactly the painted squares.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from edgevision import errors
from edgevision.runtimes import load_runtime
from edgevision.types import Task
from tests.runtimes.grid_detector import LABELS, grid_detector_model, painted_split


class DetectRuntimeContract:
    runtime_name: ClassVar[str]
    format: ClassVar[str]
    precision: ClassVar[str] = "fp32"

    @pytest.fixture(scope="class")
    def painted(self, tmp_path_factory):
        return painted_split(tmp_path_factory.mktemp("painted") / "val")

    @pytest.fixture(scope="class")
    def bundle(self, painted, tmp_path_factory):
        from edgevision.export import ParityConfig, export

        out = tmp_path_factory.mktemp(f"{self.runtime_name}-detect-{self.precision}") / "bundle"
        return export(grid_detector_model(), out, format=self.format, precision=self.precision,
                      parity=ParityConfig(data=painted))

    @pytest.fixture(scope="class")
    def runtime(self, bundle):
        with load_runtime(bundle, self.runtime_name, threads=1) as engine:
            yield engine

    def test_manifest_describes_the_task_and_its_decoding(self, bundle):
        manifest = bundle.manifest
        assert manifest.task is Task.DETECT
        (output,) = manifest.outputs
        assert (output.meaning, output.shape) == ("boxes_scores", (-1, 4 + len(LABELS), 16))
        assert manifest.detection.output == output.name and manifest.labels == LABELS

    def test_detection_parity_is_measured_and_passes(self, bundle):
        parity = bundle.manifest.parity
        assert parity.task is Task.DETECT and parity.passed
        assert parity.detection_map50 >= parity.min_detection_map50 >= 0.98
        assert parity.engine == self.runtime_name

    @pytest.mark.parametrize("n", [1, 3])
    def test_infer_outputs_returns_every_output_by_name(self, runtime, bundle, n):
        batch = np.random.default_rng(0).random((n, *runtime.input_spec.shape[1:]), dtype=np.float32)
        outputs = runtime.infer_outputs(batch)
        assert list(outputs) == [o.name for o in bundle.manifest.outputs]
        raw = outputs[bundle.manifest.detection.output]
        assert raw.shape == (n, 4 + len(LABELS), 16) and np.isfinite(raw).all()
        assert ((raw[:, 4:] >= 0) & (raw[:, 4:] <= 1)).all()
        np.testing.assert_array_equal(runtime.infer(batch), raw)  # the primary output

    def test_detect_finds_the_painted_squares_in_frame_pixels(self, runtime, painted):
        from edgevision.data.coco import CocoDetections

        dataset = CocoDetections.open(painted, labels=LABELS)
        images = [image for image, _ in dataset]
        for found, target in zip(runtime.detect(images), dataset.targets, strict=True):
            assert sorted(found.class_ids.tolist()) == sorted(target.class_ids.tolist())
            for box, k in zip(found.boxes, found.class_ids, strict=True):
                (expected,) = target.boxes_xyxy[target.class_ids == k]
                np.testing.assert_allclose(box, expected, atol=0.5)
            assert set(found.label_names) <= set(LABELS) and (found.scores > 0.9).all()

    def test_predict_on_raw_images_returns_the_raw_head(self, runtime, painted):
        from edgevision.data.coco import CocoDetections

        image = CocoDetections.open(painted, labels=LABELS).image(0)
        assert runtime.predict([image]).shape == (1, 4 + len(LABELS), 16)

    def test_wrong_shape_is_a_clear_error(self, runtime):
        with pytest.raises(errors.InputError, match="does not match"):
            runtime.infer_outputs(np.zeros((1, 3, 7, 7), dtype=np.float32))
