"""A tiny segment bundle whose masks are known, built from scratch for tests (task, metric, runtime and stream tests).

The model sees a 64×64 letterboxed RGB input (0..1, no mean/std) and scores three classes per 4×4 block
(a stride-4 output, 16×16): "background" = 0.5, "red" = 50 · (mean red − mean green − 0.25), "blue" likewise
with blue. So a saturated red or blue square painted on a black frame is that class, every other pixel is
background, and the device must upsample ×4 and undo the letterbox to map the mask onto the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevision.bundle import (
    Bundle,
    InputSpec,
    Manifest,
    OutputSpec,
    PreprocessSpec,
    SegmentationSpec,
    SourceInfo,
    write_manifest,
)
from edgevision.types import Format, Precision, ResizePolicy, SegmentationLayout, Task

SIZE, STRIDE = 64, 4
LABELS = ("background", "red", "blue")
#: A 48×96 (h×w) frame letterboxes at scale 2/3 to 32×64, 16 rows down. Squares on the 4-pixel output grid
#: (a multiple of 6 frame pixels) map back exactly.
FRAME_SHAPE = (48, 96, 3)
RED_BOX = (48, 0, 72, 24)  # x0, y0, x1, y1 in frame pixels
BLUE_BOX = (0, 24, 24, 48)


def painted_frame(scale: int = 1) -> np.ndarray:
    """A black BGR frame (FRAME_SHAPE × scale) with a red and a blue square."""
    frame = np.zeros((FRAME_SHAPE[0] * scale, FRAME_SHAPE[1] * scale, 3), dtype=np.uint8)
    for box, colour in ((RED_BOX, (0, 0, 255)), (BLUE_BOX, (255, 0, 0))):
        x0, y0, x1, y1 = (v * scale for v in box)
        frame[y0:y1, x0:x1] = colour
    return frame


def expected_mask(scale: int = 1) -> np.ndarray:
    """The class ids `painted_frame(scale)` must get, per frame pixel."""
    mask = np.zeros(FRAME_SHAPE[:2], np.uint8)
    for box, class_id in ((RED_BOX, 1), (BLUE_BOX, 2)):
        x0, y0, x1, y1 = box
        mask[y0:y1, x0:x1] = class_id
    return np.kron(mask, np.ones((scale, scale), np.uint8))


def build_block_segmenter():
    """The torch module (stride-4 class scores), exported by `write_segment_bundle`."""
    import torch

    class BlockSegmenter(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = torch.nn.AvgPool2d(STRIDE)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            r, g, b = self.pool(images).unbind(dim=1)
            background = torch.full_like(r, 0.5)
            return torch.stack([background, 50.0 * (r - g - 0.25), 50.0 * (b - g - 0.25)], dim=1)

    return BlockSegmenter().eval()


def write_segment_bundle(directory: Path) -> Bundle:
    """Export the block model to ONNX (opset 17) and write its segment manifest by hand."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        build_block_segmenter(), (torch.zeros(1, 3, SIZE, SIZE),), str(directory / "model.onnx"), dynamo=False,
        opset_version=17, input_names=["images"], output_names=["scores"],
        dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}},
    )
    side = SIZE // STRIDE
    manifest = Manifest(
        name=directory.name, task=Task.SEGMENT, format=Format.ONNX, precision=Precision.FP32,
        model_files=("model.onnx",), input=InputSpec(name="images", shape=(-1, 3, SIZE, SIZE)),
        outputs=(OutputSpec(name="scores", shape=(-1, len(LABELS), side, side), meaning="class_scores"),),
        num_classes=len(LABELS), labels=LABELS,
        preprocess=PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=STRIDE,
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), pad_value=0.0),
        segmentation=SegmentationSpec(output="scores", layout=SegmentationLayout.CLASS_SCORES, background_class=0),
        source=SourceInfo(sha256="0" * 64),
    )
    write_manifest(directory, manifest)
    return Bundle.load(directory)
