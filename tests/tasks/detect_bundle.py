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
from tests.runtimes.grid_detector import CELL, LABELS, SIZE, build_grid_detector

#: A 48×96 (h×w) frame letterboxes at scale 2/3 to 32×64 placed 16 rows down: cell (row, col) of the input
#: covers frame pixels x 24·col .. 24·(col+1), y 24·(row−1) .. 24·row (× k for a frame k times as big).
FRAME_SHAPE = (48, 96, 3)
RED_BOX = (48.0, 0.0, 72.0, 24.0)  # cell (1, 2)
BLUE_BOX = (0.0, 24.0, 24.0, 48.0)  # cell (2, 0)


def painted_frame(scale: int = 1, *, red: bool = True, blue: bool = True) -> np.ndarray:
    """A black BGR frame of FRAME_SHAPE × `scale` with a red square at RED_BOX × scale, a blue one at BLUE_BOX × scale."""
    frame = np.zeros((FRAME_SHAPE[0] * scale, FRAME_SHAPE[1] * scale, 3), dtype=np.uint8)
    for wanted, box, colour in ((red, RED_BOX, (0, 0, 255)), (blue, BLUE_BOX, (255, 0, 0))):
        if wanted:
            x0, y0, x1, y1 = (int(v) * scale for v in box)
            frame[y0:y1, x0:x1] = colour
    return frame


def write_detect_bundle(directory: Path, *, class_agnostic: bool = False, extra_first_output: bool = False) -> Bundle:
    """Export the grid model to ONNX (opset 17, one file) and write its detect manifest by hand.

    `extra_first_output`: the model also returns its cell means, first, so the raw head is not the primary output.
    """
    import torch

    cells = (SIZE // CELL) ** 2
    outputs = [OutputSpec(name="output0", shape=(-1, 4 + len(LABELS), cells), meaning="boxes_scores")]
    if extra_first_output:
        outputs.insert(0, OutputSpec(name="means", shape=(-1, len(LABELS), cells), meaning="cell_means"))
    names = [o.name for o in outputs]
    directory.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        build_grid_detector(with_means=extra_first_output), (torch.zeros(1, 3, SIZE, SIZE),), str(directory / "model.onnx"), dynamo=False,
        opset_version=17, input_names=["images"], output_names=names,
        dynamic_axes={"images": {0: "batch"}, **{name: {0: "batch"} for name in names}},
    )
    manifest = Manifest(
        name=directory.name, task=Task.DETECT, format=Format.ONNX, precision=Precision.FP32,
        model_files=("model.onnx",), input=InputSpec(name="images", shape=(-1, 3, SIZE, SIZE)),
        outputs=tuple(outputs),
        num_classes=len(LABELS), labels=LABELS,
        preprocess=PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=CELL,
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        detection=DetectionSpec(output="output0", normalized_boxes=False, strides=(CELL,),
                                class_agnostic=class_agnostic),
        source=SourceInfo(sha256="0" * 64),
    )
    write_manifest(directory, manifest)
    return Bundle.load(directory)
