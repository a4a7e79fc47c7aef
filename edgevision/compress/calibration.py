"""Calibration data: an ImageFolder or a COCO detection split, read through the model's own preprocessing.

INT8 engines set their activation ranges from a few hundred real images. The set is a
re-iterable (each pass re-reads the images, so 300 images at 224×224 never sit in memory as
floats) plus thin adapters to each engine's reader protocol: NNCF's ``nncf.Dataset``, ONNX
Runtime's single-pass ``CalibrationDataReader`` and TensorRT's entropy calibrator.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import InputSpec, PreprocessSpec
from ..data.folder import ImageFolder
from ..errors import ConfigError
from ..preprocess import preprocess_batch
from ..types import Layout

#: Below this many images INT8 ranges are noticeably less reliable (NNCF's and ORT's usual default).
RECOMMENDED_IMAGES = 300


class FewCalibrationImagesWarning(UserWarning):
    """Fewer calibration images than `RECOMMENDED_IMAGES`: the INT8 model may lose accuracy."""


@dataclass(frozen=True, kw_only=True)
class CalibrationConfig:
    """`data`: an ImageFolder (root/<label>/<image>), or a COCO detection split (a directory holding
    ``annotations.json`` + ``images/``, e.g. a detector's train split), like the images the model will see.

    `max_images` images are drawn from it with `seed` (all of them when it holds fewer).
    Labels and boxes are not used; a folder of unlabelled images works as one class sub-folder.
    """

    data: Path
    max_images: int = RECOMMENDED_IMAGES
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", Path(self.data))
        if self.max_images < 1:
            raise ConfigError(f"CalibrationConfig.max_images must be at least 1, got {self.max_images}.")


class CalibrationSet:
    """Preprocessed calibration images, NCHW float32, one (1, 3, H, W) array per image.

    Iterating starts over every time, as NNCF and TensorRT need. Warns when the
    folder gives fewer than `RECOMMENDED_IMAGES` images.
    """

    def __init__(self, config: CalibrationConfig, *, preprocess: PreprocessSpec) -> None:
        self.folder = open_calibration_images(config.data).subset(config.max_images, seed=config.seed)
        self.preprocess = preprocess
        height, width = preprocess.size
        self.input_spec = InputSpec(name="input", shape=(1, 3, height, width))
        self.config = config
        if len(self.folder) < RECOMMENDED_IMAGES:
            message = (
                f"Calibrating INT8 on {len(self.folder)} images from {config.data}; ranges are reliable from about "
                f"{RECOMMENDED_IMAGES}. Add images like the ones the model will see if accuracy drops."
            )
            warnings.warn(message, FewCalibrationImagesWarning, stacklevel=3)

    def __len__(self) -> int:
        return len(self.folder)

    def __iter__(self) -> Iterator[np.ndarray]:
        for image, _ in self.folder:
            yield preprocess_batch([image], self.preprocess, self.input_spec)

    def batches(self, batch_size: int) -> CalibrationBatches:
        """Re-iterable fixed-size batches (the last partial batch is dropped, unless it is the only one)."""
        return CalibrationBatches(self, batch_size)

    def describe(self) -> str:
        return f"{len(self)} calibration images from {self.config.data.name}"


def is_coco_split(path: Path) -> bool:
    """A COCO detection split: a directory with annotations.json, or the .json file itself."""
    return (path.is_dir() and (path / "annotations.json").is_file()) or (path.is_file() and path.suffix == ".json")


def is_mask_split(path: Path) -> bool:
    """A segmentation split: images/, masks/ and labels.txt (`edgevision.data.masks`)."""
    from ..data.masks import IMAGES, LABELS_FILE, MASKS

    return path.is_dir() and (path / IMAGES).is_dir() and (path / MASKS).is_dir() and (path / LABELS_FILE).is_file()


def open_calibration_images(path: Path) -> Any:
    """An ImageFolder, a CocoDetections or a MaskFolder (each iterates (BGR image, label/target/mask) and takes
    subset(n, seed=)). A split with both boxes and masks (edgevision's generated one) calibrates the same either way."""
    if is_coco_split(path):
        from ..data.coco import CocoDetections

        return CocoDetections.open(path, check_images=False)
    if is_mask_split(path):
        from ..data.masks import MaskFolder

        return MaskFolder.open(path)
    return ImageFolder.open(path)


@dataclass(frozen=True)
class CalibrationBatches:
    """`CalibrationSet` regrouped into N×3×H×W batches of one size (TensorRT calibrates with one shape)."""

    source: CalibrationSet
    batch_size: int

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"Calibration batch_size must be at least 1, got {self.batch_size}.")

    def __iter__(self) -> Iterator[np.ndarray]:
        pending: list[np.ndarray] = []
        produced = 0
        for sample in self.source:
            pending.append(sample)
            if len(pending) == self.batch_size:
                yield np.concatenate(pending)
                produced += 1
                pending = []
        if pending and produced == 0:
            yield np.concatenate(pending)


# -- adapters to each engine's reader protocol ---------------------------------------------------


def nncf_dataset(calibration: CalibrationSet) -> Any:
    """``nncf.Dataset`` over the set; NNCF re-iterates it for statistics and bias correction."""
    from .._optional import require

    nncf = require("nncf", extra="compress", what="NNCF")
    return nncf.Dataset(calibration)


class OrtCalibrationReader:
    """ONNX Runtime's `CalibrationDataReader` protocol: `get_next()` → {input: batch} or None.

    ORT reads it once; `rewind()` starts over. Images go in batches of `batch_size` (use 1 for a
    graph with a fixed batch); the layout follows the graph's input (TensorFlow exports NHWC).
    """

    def __init__(
        self, calibration: CalibrationSet, *, input_name: str, layout: Layout = Layout.NCHW, batch_size: int = 1
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"Calibration batch_size must be at least 1, got {batch_size}.")
        self.calibration = calibration
        self.input_name = input_name
        self.layout = layout
        self.batch_size = batch_size
        self._iterator: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iterator is None:
            self._iterator = iter(self.calibration)
        samples = [s for _, s in zip(range(self.batch_size), self._iterator)]
        if not samples:
            return None
        batch = np.concatenate(samples)
        if self.layout is Layout.NHWC:
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._iterator = None

    def __len__(self) -> int:
        return (len(self.calibration) + self.batch_size - 1) // self.batch_size


def ort_calibration_reader(
    calibration: CalibrationSet, *, input_name: str, layout: Layout = Layout.NCHW, batch_size: int = 1
) -> Any:
    """An instance of ORT's own `CalibrationDataReader` class (quantize_static checks the type)."""
    from .._optional import require

    require("onnxruntime", extra="onnx", what="ONNX Runtime")
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(OrtCalibrationReader, CalibrationDataReader):
        pass

    return _Reader(calibration, input_name=input_name, layout=layout, batch_size=batch_size)


def tensorrt_calibrator(
    calibration: CalibrationSet, *, input_spec: InputSpec, batch_size: int = 8, cache_file: str | os.PathLike[str] | None = None
) -> Any:
    """`EntropyCalibrator` (edgevision.runtimes.tensorrt_calibration) fed from the same images."""
    from ..runtimes.tensorrt_calibration import EntropyCalibrator

    return EntropyCalibrator(
        calibration.batches(min(batch_size, len(calibration))), input_spec=input_spec,
        cache_file=Path(cache_file) if cache_file is not None else None,
    )


__all__ = [
    "RECOMMENDED_IMAGES", "CalibrationBatches", "CalibrationConfig", "CalibrationSet", "FewCalibrationImagesWarning",
    "OrtCalibrationReader", "is_coco_split", "is_mask_split", "nncf_dataset", "open_calibration_images", "ort_calibration_reader", "tensorrt_calibrator",
]
