"""Top-1 of a bundle through its own engine on an image folder: the yardstick the compress tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgevision.bundle import Bundle
from edgevision.data.folder import ImageFolder


def engine_accuracy(bundle: Bundle, data: Path) -> float:
    from edgevision.runtimes import load_runtime

    folder = ImageFolder.open(data, labels=bundle.manifest.labels)
    correct = 0
    with load_runtime(bundle) as engine:
        for images, labels in folder.batches(64):
            correct += int(np.sum(engine.predict(images).argmax(1) == labels))
    return correct / len(folder)
