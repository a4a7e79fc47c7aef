"""The demo data set: scikit-learn's bundled handwritten digits written as an ImageFolder.

8×8 grey digits (1,797 of them, shipped inside scikit-learn, no download) become dark ink on
light paper, upscaled to `size`×`size` RGB PNGs with a seeded, stratified train/val/test split:
train fits the weights, val chooses (epochs, checkpoints, thresholds, accuracy control, parity),
test reports, and nothing ever chooses anything on it.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._optional import opencv
from ..errors import ConfigError

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

LABELS = tuple(str(d) for d in range(10))
_STAMP = "digits.json"


@dataclass(frozen=True)
class DigitsSplit:
    train: Path
    val: Path  # the selection split
    test: Path  # the held-out split every published accuracy is measured on
    labels: tuple[str, ...] = LABELS


def make_digits_folder(
    root: str | Path, *, size: int = 32, val_fraction: float = 0.15, test_fraction: float = 0.2, seed: int = 0
) -> DigitsSplit:
    """Write (or reuse, if already written with the same settings) root/{train,val,test}/<digit>/*.png."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ConfigError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must each lie in (0, 1) and sum below 1."
        )
    root = Path(root)
    settings = {"size": size, "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed, "version": 2}
    split = DigitsSplit(train=root / "train", val=root / "val", test=root / "test")
    stamp = root / _STAMP
    if stamp.is_file() and json.loads(stamp.read_text()) == settings:
        return split
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    indices = np.arange(len(digits.target))
    rest_idx, test_idx = train_test_split(
        indices, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    train_idx, val_idx = train_test_split(
        rest_idx, test_size=val_fraction / (1 - test_fraction), random_state=seed, stratify=digits.target[rest_idx]
    )
    for part in ("train", "val", "test"):
        shutil.rmtree(root / part, ignore_errors=True)  # a stale layout must not leak images between splits
    for part, chosen in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        for label in LABELS:
            (root / part / label).mkdir(parents=True, exist_ok=True)
        for i in chosen:
            image = digit_to_image(digits.images[i], size=size)
            cv2.imwrite(str(root / part / str(digits.target[i]) / f"{i:04d}.png"), image)
    stamp.write_text(json.dumps(settings))
    return split


def digit_to_image(digit: np.ndarray, *, size: int) -> np.ndarray:
    """An 8×8 array of 0..16 ink values → size×size×3 uint8 BGR, dark ink on light paper."""
    paper = 255.0 - digit.astype(np.float32) * (255.0 / 16.0)
    grey = cv2.resize(paper, (size, size), interpolation=cv2.INTER_CUBIC)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
