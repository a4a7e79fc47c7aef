"""The segmentation half of the demo: the digits-on-photos masks and the LRASPP segmenter trained on them.

Same discipline as the classifier and the detector: train fits, val chooses the epoch, test reports
(mIoU on the original frames, as a device measures it).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError

if TYPE_CHECKING:
    from ..data.detection import DetectionSplits
    from ..train_segment import SegmenterTrainingReport


def train_segmenter_with_progress(root: Path, *, threads: int | None, seed: int = 0, epochs: int | None = None,
                                  splits: DetectionSplits | None = None) -> tuple[DetectionSplits, SegmenterTrainingReport]:
    """Train the demo segmenter with a progress bar on the digits-on-photos masks; root/{data, model.pt, train.json}.

    `splits`: data already generated (the detection demo's: its masks sit beside the boxes, same images);
    root/data is then a symlink to it instead of a second copy. None: generated under root/data.
    """
    from ..data.detection import make_detection_dataset
    from ..train_segment import DEFAULT_EPOCHS, SegmenterProgress, train_segmenter
    from .console import console, progress

    root.mkdir(parents=True, exist_ok=True)
    if splits is None:
        with console.status(f"writing the segmentation data set (digits on photos, masks) to {root / 'data'} …"):
            splits = make_detection_dataset(root / "data", seed=seed)
    else:
        _link_data(root / "data", splits.root)
    epochs = epochs or DEFAULT_EPOCHS
    with progress() as bar:
        task = bar.add_task("training the digits segmenter", total=None)

        def on_step(event: SegmenterProgress) -> None:
            bar.update(task, total=event.epochs * event.steps, completed=(event.epoch - 1) * event.steps + event.step)
            if event.val_miou is not None:
                bar.update(task, description=f"training the digits segmenter (epoch {event.epoch}: loss {event.loss:.3f}, "
                                             f"val mIoU {event.val_miou:.3f})")

        report = train_segmenter(splits, root / "model.pt", epochs=epochs, threads=threads, seed=seed, progress=on_step)
    (root / "train.json").write_text(json.dumps({
        "epochs": report.epochs, "best_epoch": report.best_epoch, "val_miou": list(report.val_miou),
        "test_miou": report.test_miou, "test_pixel_accuracy": report.test_pixel_accuracy,
        "test_class_iou": {label: None if math.isnan(iou) else iou  # NaN: the class never occurred in test
                           for label, iou in zip(report.labels, report.test_class_iou, strict=True)},
        "seconds": report.seconds, "images": report.images, "input_size": list(report.input_size),
        "note": "val chose the epoch; test chose nothing and is the figure to report",
    }, indent=2))
    return splits, report


def _link_data(link: Path, target: Path) -> None:
    """link → target (relative when possible), replacing an older link; a real folder there is an error."""
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise DataError(f"{link} already holds data; remove it, or pass no splits to reuse it.")
    try:
        relative = Path(os.path.relpath(target.resolve(), link.parent.resolve()))
    except ValueError:  # another drive (Windows)
        relative = target.resolve()
    link.symlink_to(relative, target_is_directory=True)
