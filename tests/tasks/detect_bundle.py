"""A tiny YOLO-layout detect bundle, built from scratch for tests (shared by the task, metric and stream tests).

The model sees a 64×64 letterboxed RGB input (0..1, no mean/std) as a 4×4 grid of 16-pixel cells. Each cell
is one candidate with a fixed box (the cell itself, centre-x/centre-y/w/h in input pixels, as Ultralytics
exports) and two sigmoid scores: "red" from the cell's mean red, "blue" from its mean blue. So a red or blue
square painted on a frame where a cell lands is detected with a known box in the frame's own pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevision.bundle import (
    Bundle,
    DetectionSpec,
    InputSpec,
    Manifest,
    OutputSpec,
    PreprocessSpec,
    SourceInfo,
    write_manifest,
)
from edgevision.types import Format, Precision, ResizePolicy, Task

SIZE = 64
CELL = 16
LABELS = ("red", "blue")
#: A 48×96 (h×w) frame letterboxes at scale 2/3 to 32×64 placed 16 rows down: cell (row, col) of the input
#: covers frame pixels x 24·col .. 24·(col+1), y 24·(row−1) .. 24·row.
FRAME_SHAPE = (48, 96, 3)
RED_BOX = (48.0, 0.0, 72.0, 24.0)  # cell (1, 2)
BLUE_BOX = (0.0, 24.0, 24.0, 48.0)  # cell (2, 0)


def painted_frame() -> np.ndarray:
    """A black BGR frame with a red square at RED_BOX and a blue one at BLUE_BOX."""
    frame = np.zeros(FRAME_SHAPE, dtype=np.uint8)
    x0, y0, x1, y1 = (int(v) for v in RED_BOX)
    frame[y0:y1, x0:x1] = (0, 0, 255)
    x0, y0, x1, y1 = (int(v) for v in BLUE_BOX)
    frame[y0:y1, x0:x1] = (255, 0, 0)
    return frame


def write_detect_bundle(directory: Path, *, class_agnostic: bool = False) -> Bundle:
    """Export the grid model to ONNX (opset 17, one file) and write its detect manifest by hand."""
    import torch

    class GridDetector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cells = SIZE // CELL
            centres = (torch.arange(cells, dtype=torch.float32) + 0.5) * CELL
            cy, cx = torch.meshgrid(centres, centres, indexing="ij")
            side = torch.full((cells * cells,), float(CELL))
            self.register_buffer("boxes", torch.stack([cx.reshape(-1), cy.reshape(-1), side, side]))
            self.pool = torch.nn.AvgPool2d(CELL)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            means = self.pool(images)[:, [0, 2]].flatten(2)  # (N, 2 classes, 16 cells): red, blue
            scores = torch.sigmoid(50.0 * (means - 0.5))
            return torch.cat([self.boxes.expand(images.shape[0], -1, -1), scores], dim=1)

    directory.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        GridDetector().eval(), (torch.zeros(1, 3, SIZE, SIZE),), str(directory / "model.onnx"), dynamo=False,
        opset_version=17, input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
    )
    cells = (SIZE // CELL) ** 2
    manifest = Manifest(
        name=directory.name, task=Task.DETECT, format=Format.ONNX, precision=Precision.FP32,
        model_files=("model.onnx",), input=InputSpec(name="images", shape=(-1, 3, SIZE, SIZE)),
        outputs=(OutputSpec(name="output0", shape=(-1, 4 + len(LABELS), cells), meaning="boxes_scores"),),
        num_classes=len(LABELS), labels=LABELS,
        preprocess=PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=CELL,
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        detection=DetectionSpec(output="output0", normalized_boxes=False, strides=(CELL,),
                                class_agnostic=class_agnostic),
        source=SourceInfo(sha256="0" * 64),
    )
    write_manifest(directory, manifest)
    return Bundle.load(directory)
