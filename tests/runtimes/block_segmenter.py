"""A segmenter whose masks are known, as a TrainedModel every exporter takes, and a painted mask split for it.

The module is `tests.tasks.segment_bundle.build_block_segmenter` (64×64 letterboxed input, three classes
scored per 4×4 block: "background", "red", "blue"), registered as an architecture so the torch format
can rebuild it. The split's frames are 48×96 black images with a red and a blue square whose edges lie on
multiples of 6 frame pixels: the letterbox (scale 2/3) puts them on the 4-pixel output grid, so every
engine must return exactly the painted masks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.tasks.segment_bundle import LABELS, SIZE, STRIDE, build_block_segmenter

ARCHITECTURE = "tests_block_segmenter"
FRAME = (48, 96)


def build_registered_block_segmenter(*, num_classes: int = 3, input_size: tuple[int, int] | None = None):
    if num_classes != len(LABELS) or tuple(input_size or (SIZE, SIZE)) != (SIZE, SIZE):
        raise ValueError(f"the block segmenter has {len(LABELS)} classes at {SIZE}×{SIZE}")
    return build_block_segmenter()


def block_segmenter_model(module=None, *, name: str = "blocks"):
    """The block segmenter (or `module`, same contract) as a TrainedModel with task segment."""
    from edgevision.bundle import PreprocessSpec, SegmentationSpec
    from edgevision.model import CUSTOM_ARCHITECTURES, TrainedModel
    from edgevision.types import ResizePolicy, Task

    CUSTOM_ARCHITECTURES[ARCHITECTURE] = "tests.runtimes.block_segmenter:build_registered_block_segmenter"
    return TrainedModel(
        module=module if module is not None else build_block_segmenter(), labels=list(LABELS),
        architecture=ARCHITECTURE if module is None else None, name=name,
        preprocess=PreprocessSpec(size=(SIZE, SIZE), resize=ResizePolicy.LETTERBOX, stride=STRIDE,
                                  mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), pad_value=0.0),
        task=Task.SEGMENT, segmentation=SegmentationSpec(output="class_scores", background_class=0),
    )


def painted_mask_split(directory: Path, *, images: int = 6, seed: int = 0) -> Path:
    """A mask split (images/, masks/, labels.txt) of black frames with one red and one blue square each."""
    import cv2

    rng = np.random.default_rng(seed)
    for folder in ("images", "masks"):
        (directory / folder).mkdir(parents=True, exist_ok=True)
    (directory / "labels.txt").write_text("\n".join(LABELS) + "\n")
    height, width = FRAME
    for index in range(images):
        frame = np.zeros((height, width, 3), np.uint8)
        mask = np.zeros((height, width), np.uint8)
        columns = rng.choice(width // 24, size=2, replace=False)  # two 24-pixel columns, one square each
        for class_id, column in enumerate(columns.tolist(), start=1):
            side = 6 * int(rng.integers(2, 5))
            x0, y0 = 24 * column, 6 * int(rng.integers(0, (height - side) // 6 + 1))
            frame[y0 : y0 + side, x0 : x0 + side] = (0, 0, 255) if class_id == 1 else (255, 0, 0)
            mask[y0 : y0 + side, x0 : x0 + side] = class_id
        cv2.imwrite(str(directory / "images" / f"{index:03d}.png"), frame)
        cv2.imwrite(str(directory / "masks" / f"{index:03d}.png"), mask)
    return directory
