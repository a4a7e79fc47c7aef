"""The torch-side twin of `edgevision.preprocess`, used for training and calibration.

Same order of operations as the device path; tests hold the two within
`edgevision.preprocess.PARITY_TOLERANCE`. Imports torch: workstation only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import PreprocessSpec
from ..types import ColorOrder, ResizePolicy
from .folder import ImageFolder


def eval_transform(spec: PreprocessSpec) -> Any:
    """BGR uint8 H×W×3 numpy image → normalised float CHW tensor, exactly as the device does."""
    return _build(spec, augment=False)


def train_transform(spec: PreprocessSpec) -> Any:
    """`eval_transform` plus mild geometric augmentation (small shifts, rotations, scale)."""
    return _build(spec, augment=True)


def _build(spec: PreprocessSpec, *, augment: bool) -> Any:
    from .._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from torchvision.transforms import InterpolationMode, v2

    interpolation = InterpolationMode.BILINEAR if spec.interpolation == "bilinear" else InterpolationMode.NEAREST
    steps: list[Any] = [
        v2.Lambda(lambda image: _to_chw_tensor(image, spec.color_order)),
        v2.Lambda(lambda tensor: tensor.to(torch.float32) * spec.scale),
    ]
    if spec.resize is ResizePolicy.RESIZE:
        steps.append(v2.Resize(list(spec.size), interpolation=interpolation, antialias=False))
    else:
        steps.append(v2.Resize(spec.resize_shorter or max(spec.size), interpolation=interpolation, antialias=False))
        steps.append(v2.CenterCrop(list(spec.size)))
    if augment:
        steps.append(v2.RandomAffine(degrees=10, translate=(0.08, 0.08), scale=(0.9, 1.1), fill=_paper_fill(spec)))
    steps.append(v2.Normalize(mean=list(spec.mean), std=list(spec.std)))
    return v2.Compose(steps)


def _paper_fill(spec: PreprocessSpec) -> list[float]:
    return [1.0, 1.0, 1.0] if spec.scale == 1.0 / 255.0 else [255.0 * spec.scale] * 3


def _to_chw_tensor(image: np.ndarray, color_order: ColorOrder) -> Any:
    import torch

    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if color_order is ColorOrder.RGB:
        image = image[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class TorchImageFolder:
    """A torch Dataset over an ImageFolder with a transform (map-style, picklable)."""

    def __init__(self, folder: ImageFolder, transform: Any) -> None:
        self.folder = folder
        self.transform = transform

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.folder.read(index)
        return self.transform(image), label
