"""What every runtime must do with a segment bundle. Each engine's test module subclasses `SegmentRuntimeContract`.

The bundle is the block segmenter (tests/runtimes/block_segmenter.py) exported through `edgevision.export` with
mask parity on a painted mask split, so every engine must return exactly the painted masks, the masks torch
gives, in each frame's own pixels; and it must do so in a process that never imports torch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from edgevision import errors
from edgevision.runtimes import load_runtime
from edgevision.types import Task
from tests.blocking import run_blocked
from tests.runtimes.block_segmenter import block_segmenter_model, painted_mask_split
from tests.tasks.segment_bundle import LABELS, SIZE, STRIDE

SIDE = SIZE // STRIDE


class SegmentRuntimeContract:
    runtime_name: ClassVar[str]
    format: ClassVar[str]
    precision: ClassVar[str] = "fp32"

    @pytest.fixture(scope="class")
    def painted(self, tmp_path_factory):
        return painted_mask_split(tmp_path_factory.mktemp("painted-masks") / "val")

    @pytest.fixture(scope="class")
    def bundle(self, painted, tmp_path_factory):
        from edgevision.export import ParityConfig, export

        out = tmp_path_factory.mktemp(f"{self.runtime_name}-segment-{self.precision}") / "bundle"
        return export(block_segmenter_model(), out, format=self.format, precision=self.precision,
                      parity=ParityConfig(data=painted))

    @pytest.fixture(scope="class")
    def runtime(self, bundle):
        with load_runtime(bundle, self.runtime_name, threads=1) as engine:
            yield engine

    def test_manifest_describes_the_task_and_its_decoding(self, bundle):
        manifest = bundle.manifest
        assert manifest.task is Task.SEGMENT and manifest.labels == LABELS
        (output,) = manifest.outputs
        assert (output.meaning, output.shape) == ("class_scores", (-1, len(LABELS), SIDE, SIDE))
        assert manifest.segmentation.output == output.name and manifest.segmentation.background_class == 0

    def test_mask_parity_is_measured_and_passes(self, bundle, painted):
        parity = bundle.manifest.parity
        assert parity.task is Task.SEGMENT and parity.passed and parity.engine == self.runtime_name
        assert parity.mask_miou == parity.top1_agreement == 1.0  # the squares sit on the output grid: no near-ties
        assert parity.min_mask_miou >= 0.98 and parity.mask_classes == len(LABELS)
        assert str(painted) in parity.data and "6 images" in parity.data

    @pytest.mark.parametrize("n", [1, 3])
    def test_infer_outputs_returns_class_scores_by_name(self, runtime, bundle, n):
        batch = np.random.default_rng(0).random((n, *runtime.input_spec.shape[1:]), dtype=np.float32)
        outputs = runtime.infer_outputs(batch)
        assert list(outputs) == [bundle.manifest.segmentation.output]
        assert outputs[bundle.manifest.segmentation.output].shape == (n, len(LABELS), SIDE, SIDE)
        assert np.isfinite(runtime.infer(batch)).all()

    def test_segment_gives_the_painted_masks_and_torch_masks_in_frame_pixels(self, runtime, bundle, painted):
        from edgevision.data.masks import MaskFolder
        from edgevision.preprocess import preprocess_batch
        from edgevision.tasks.detect import letterboxes_for
        from edgevision.tasks.segment import postprocess_masks
        from edgevision.types import Layout

        manifest = bundle.manifest
        folder = MaskFolder.open(painted)
        images, truths = next(folder.batches(len(folder)))
        nchw = preprocess_batch(images, manifest.preprocess, manifest.input.with_layout(Layout.NCHW))
        torch_masks = postprocess_masks(block_segmenter_model().reference_outputs(nchw), manifest,
                                        letterboxes_for(images, manifest.preprocess))
        found = runtime.segment(images)
        for mask, truth, torch_mask, image in zip(found, truths, torch_masks, images, strict=True):
            assert mask.shape == image.shape[:2] and mask.labels == LABELS
            assert np.array_equal(mask.class_ids, torch_mask.class_ids)
            assert np.array_equal(mask.class_ids, truth)

    def test_a_segmenter_asked_for_boxes_says_so(self, runtime):
        with pytest.raises(errors.ConfigError, match="is a segment model: it has no boxes"):
            runtime.detect([np.zeros((40, 50, 3), np.uint8)])

    def test_wrong_shape_is_a_clear_error(self, runtime):
        with pytest.raises(errors.InputError, match="does not match"):
            runtime.infer_outputs(np.zeros((1, 3, 7, 7), dtype=np.float32))

    def test_segments_in_a_process_that_never_imports_torch(self, bundle, painted):
        result = run_blocked(
            f"""
            import sys, numpy as np, edgevision
            from edgevision.data.masks import MaskFolder
            folder = MaskFolder.open({str(painted)!r})
            with edgevision.load_runtime({str(bundle.path)!r}, {self.runtime_name!r}, threads=1) as engine:
                masks = engine.segment([folder.image(i) for i in range(len(folder))])
            print(all(np.array_equal(m.class_ids, folder.mask(i)) for i, m in enumerate(masks)))
            assert "torch" not in sys.modules and "litert_torch" not in sys.modules
            """,
            blocked=("torch", "torchvision", "litert_torch", "ai_edge_quantizer"),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "True"
