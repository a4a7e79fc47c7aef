"""A detector whose answers are known, for the runtime contract: every engine must find the same squares.

The model sees a 64×64 letterboxed RGB input (0..1, no mean/std) as a 4×4 grid of 16-pixel cells; each
cell is one candidate with the cell as its box (centre-x/centre-y/w/h in input pixels, as Ultralytics
exports) and two sigmoid scores, "red" and "blue", from the cell's mean red and blue. A red or blue
square painted where a cell lands is detected with a known box in the frame's own pixels. It is a
plain torch module (registered as an architecture), so it exports to every format like a trained one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SIZE = 64
CELL = 16
LABELS = ("red", "blue")
ARCHITECTURE = "tests_grid_detector"


def build_grid_detector(
    *, num_classes: int = 2, input_size: tuple[int, int] | None = None, with_means: bool = False
):
    """The grid module; `with_means` also returns the cell means, first (the raw head then is not the primary output)."""
    import torch

    if num_classes != len(LABELS) or tuple(input_size or (SIZE, SIZE)) != (SIZE, SIZE):
        raise ValueError(f"the grid detector has {len(LABELS)} classes at {SIZE}×{SIZE}")

    class GridDetector(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            cells = SIZE // CELL
            centres = (torch.arange(cells, dtype=torch.float32) + 0.5) * CELL
            cy, cx = torch.meshgrid(centres, centres, indexing="ij")
            side = torch.full((cells * cells,), float(CELL))
            self.register_buffer("boxes", torch.stack([cx.reshape(-1), cy.reshape(-1), side, side]), persistent=False)
            self.pool = torch.nn.AvgPool2d(CELL)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            pooled = self.pool(images).flatten(2)  # (N, 3, 16 cells)
            means = torch.cat([pooled[:, 0:1], pooled[:, 2:3]], dim=1)  # red, blue
            scores = torch.sigmoid(50.0 * (means - 0.5))
            raw = torch.cat([self.boxes.expand(images.shape[0], -1, -1), scores], dim=1)
            return (means, raw) if with_means else raw

    return GridDetector().eval()


def grid_detector_model():
    from edgevision.bundle import DetectionSpec, PreprocessSpec
    from edgevision.model import CUSTOM_ARCHITECTURES, TrainedModel
    from edgevision.types import ResizePolicy, Task

    CUSTOM_ARCHITECTURES[ARCHITECTURE] = "tests.runtimes.grid_detector:build_grid_detector"
    return TrainedModel(
        module=build_grid_detector(), labels=list(LABELS), architecture=ARCHITECTURE, name="grid",
        preprocess=PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=CELL,
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)),
        task=Task.DETECT, detection=DetectionSpec(output="boxes_scores", normalized_boxes=False, strides=(CELL,)),
    )


def painted_split(directory: Path, *, images: int = 8, seed: int = 0) -> Path:
    """A COCO split of 48×96 black frames with red/blue squares on the cells' footprints (letterbox scale 2/3)."""
    import cv2

    rng = np.random.default_rng(seed)
    (directory / "images").mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for index in range(images):
        frame = np.zeros((48, 96, 3), dtype=np.uint8)
        cells = rng.choice(8, size=2, replace=False)  # frame cells: 2 rows × 4 columns of 24 px
        for colour, cell in enumerate(cells.tolist()):
            x0, y0 = 24 * (cell % 4), 24 * (cell // 4)
            frame[y0 : y0 + 24, x0 : x0 + 24] = (0, 0, 255) if colour == 0 else (255, 0, 0)
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": colour + 1,
                                "bbox": [x0, y0, 24, 24], "area": 576, "iscrowd": 0})
        name = f"{index:03d}.png"
        cv2.imwrite(str(directory / "images" / name), frame)
        entries.append({"id": index + 1, "file_name": name, "width": 96, "height": 48})
    categories = [{"id": i + 1, "name": label} for i, label in enumerate(LABELS)]
    (directory / "annotations.json").write_text(json.dumps(
        {"images": entries, "annotations": annotations, "categories": categories}))
    return directory
