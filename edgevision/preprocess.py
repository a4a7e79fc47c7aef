"""Turn raw images into model input exactly as training did, with numpy and OpenCV only.

This runs on the device, so it must not import torch. `edgevision.data.transforms` holds the
torch-side twin used for training; tests prove the two agree within `PARITY_TOLERANCE`.

Order of operations (identical on both sides): colour order → float scale → resize
(bilinear, no antialias, half-pixel centres) → optional centre crop → (x - mean) / std → layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .bundle import InputSpec, PreprocessSpec
from .errors import InputError
from .types import ColorOrder, Layout, ResizePolicy

#: Max abs difference (normalised units) from the torch training transform; one grey level is ≈ 0.017.
PARITY_TOLERANCE = 1e-3  # ≈ 0.06 grey levels; float rounding in the resize kernels

_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}


def preprocess_image(
    image: np.ndarray, spec: PreprocessSpec, *, image_order: ColorOrder = ColorOrder.BGR
) -> np.ndarray:
    """One image (H×W×3 uint8, or H×W grey) → float32 H×W×3 normalised, model colour order.

    `image_order` is the colour order of `image`; OpenCV capture and imread give BGR.
    """
    image = _as_three_channels(image)
    # Convert the contiguous frame and flip channels after resizing: converting a channel-reversed
    # view is ~10× slower, and resize/crop act per channel, so the numbers are identical.
    pixels = np.array(image, dtype=np.float32, order="C")
    pixels *= np.float32(spec.scale)
    pixels = _resize(pixels, spec)
    if image_order is not spec.color_order:
        pixels = pixels[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(spec.std, dtype=np.float32)
    return (pixels - mean) * inv_std


def preprocess_batch(
    images: Sequence[np.ndarray],
    spec: PreprocessSpec,
    input_spec: InputSpec,
    *,
    image_order: ColorOrder = ColorOrder.BGR,
) -> np.ndarray:
    """Several raw images → one batch in the engine's layout and dtype."""
    if len(images) == 0:
        raise InputError("No images given. Pass a list of H×W×3 uint8 arrays (as from cv2.imread).")
    batch = np.stack([preprocess_image(img, spec, image_order=image_order) for img in images])
    if input_spec.layout is Layout.NCHW:
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.dtype(input_spec.dtype))


def _as_three_channels(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise InputError(f"Expected an image as a numpy array, got {type(image).__name__}. Decode it with cv2.imread first.")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return image[..., :3]
    if image.ndim == 3 and image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    raise InputError(f"Expected an H×W×3 image, got an array of shape {image.shape}.")


def resized_shape(height: int, width: int, spec: PreprocessSpec) -> tuple[int, int]:
    """(h, w) after the resize step, before any crop (mirrors torchvision's rounding)."""
    if spec.resize is ResizePolicy.RESIZE:
        return spec.size
    shorter = spec.resize_shorter or max(spec.size)
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def _resize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    height, width = pixels.shape[:2]
    new_h, new_w = resized_shape(height, width, spec)
    if (new_h, new_w) != (height, width):
        pixels = cv2.resize(pixels, (new_w, new_h), interpolation=_INTERPOLATION[spec.interpolation])
    if spec.resize is ResizePolicy.SHORTER_SIDE_CENTER_CROP:
        crop_h, crop_w = spec.size
        if crop_h > new_h or crop_w > new_w:
            raise InputError(f"Crop {spec.size} is larger than the resized image {(new_h, new_w)}; raise resize_shorter.")
        top = int(round((new_h - crop_h) / 2.0))
        left = int(round((new_w - crop_w) / 2.0))
        pixels = pixels[top : top + crop_h, left : left + crop_w]
    return pixels
