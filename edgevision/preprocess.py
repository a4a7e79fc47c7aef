"""Turn raw images into model input exactly as training did, with numpy and OpenCV only.

This runs on the device, so it must not import torch. `edgevision.data.transforms` holds the
torch-side twin used for training; tests prove the two agree within `PARITY_TOLERANCE`.

The transform: colour order → float scale → resize (bilinear, no antialias, half-pixel centres)
→ optional centre crop → (x - mean) / std → layout. Resize and crop are linear and act per
channel, so this side swaps channels and scales after resizing, on the small image (same numbers
within float rounding, a fifth of the work on a 640×480 camera frame).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._optional import opencv
from .bundle import InputSpec, PreprocessSpec
from .errors import InputError
from .types import ColorOrder, Layout, ResizePolicy

cv2 = opencv()  # the pip wheel or the system's; a clear error when neither

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
    pixels = np.array(image, dtype=np.float32, order="C")
    pixels = _resize(pixels, spec)  # resize and crop are linear and per channel: scaling can wait
    swap = image_order is not spec.color_order
    # One OpenCV pass does the channel swap and the normalisation; numpy broadcasting over a
    # trailing axis of 3 is ~20× slower and was most of the cost of a 640×480 frame.
    return cv2.transform(pixels, _channel_matrix(spec.scale, spec.mean, spec.std, swap))


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


@functools.lru_cache(maxsize=16)
def _channel_matrix(
    scale: float, mean: tuple[float, ...], std: tuple[float, ...], swap: bool
) -> np.ndarray:
    """The 3×4 matrix for cv2.transform: out[c] = in[c'] · scale / std[c] − mean[c] / std[c].

    c' is c, or 2 − c when the image's colour order is not the model's.
    """
    matrix = np.zeros((3, 4), dtype=np.float64)
    for channel in range(3):
        matrix[channel, 2 - channel if swap else channel] = scale / std[channel]
        matrix[channel, 3] = -mean[channel] / std[channel]
    return matrix.astype(np.float32)


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


@dataclass(frozen=True)
class Letterbox:
    """Where an image of `source` (h, w) lands inside the letterboxed model input, and the way back.

    The image is scaled by `scale` (aspect ratio kept) to `resized` (h, w) and placed at (`top`,
    `left`); the rest is `pad_value`. Same rounding as Ultralytics' LetterBox, so a YOLO export
    gets the input it was trained on.
    """

    source: tuple[int, int]
    scale: float
    resized: tuple[int, int]
    top: int
    left: int

    def to_source(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes in model-input pixels (K×4 xyxy) → pixels of the original image, clipped to it."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.left, self.top, self.left, self.top], dtype=np.float32)
        mapped = (boxes - offset) / self.scale
        height, width = self.source
        np.clip(mapped[:, 0::2], 0, width, out=mapped[:, 0::2])
        np.clip(mapped[:, 1::2], 0, height, out=mapped[:, 1::2])
        return mapped

    def to_input(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Boxes in original-image pixels → model-input pixels (the inverse of `to_source`, unclipped)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.left, self.top, self.left, self.top], dtype=np.float32)
        return boxes * self.scale + offset


def letterbox_geometry(height: int, width: int, spec: PreprocessSpec) -> Letterbox:
    """How `preprocess_image` places an image of height×width into the model input.

    For a plain resize this is the stretch (scale per axis is not kept: use only with LETTERBOX,
    or when the image already has the model's aspect ratio).
    """
    if height <= 0 or width <= 0:
        raise InputError(f"Image size {(height, width)} must be positive.")
    target_h, target_w = spec.size
    if spec.resize is not ResizePolicy.LETTERBOX:
        if spec.resize is ResizePolicy.RESIZE and abs(target_h / height - target_w / width) < 1e-6:
            return Letterbox(source=(height, width), scale=target_h / height, resized=(target_h, target_w), top=0, left=0)
        raise InputError(
            f"Boxes map back to the frame only through a letterbox (or an aspect-preserving resize); this bundle "
            f"resizes with {spec.resize.value}. Export the detector with ResizePolicy.LETTERBOX."
        )
    scale = min(target_h / height, target_w / width)
    new_h, new_w = int(round(height * scale)), int(round(width * scale))
    pad_h, pad_w = (target_h - new_h) / 2, (target_w - new_w) / 2
    top, left = int(round(pad_h - 0.1)), int(round(pad_w - 0.1))
    return Letterbox(source=(height, width), scale=scale, resized=(new_h, new_w), top=top, left=left)


def resized_shape(height: int, width: int, spec: PreprocessSpec) -> tuple[int, int]:
    """(h, w) after the resize step, before any crop or padding (mirrors torchvision's rounding)."""
    if spec.resize is ResizePolicy.RESIZE:
        return spec.size
    if spec.resize is ResizePolicy.LETTERBOX:
        return letterbox_geometry(height, width, spec).resized
    shorter = spec.resize_shorter or max(spec.size)
    if height <= width:
        return shorter, int(shorter * width / height)
    return int(shorter * height / width), shorter


def _resize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    height, width = pixels.shape[:2]
    new_h, new_w = resized_shape(height, width, spec)
    if (new_h, new_w) != (height, width):
        pixels = cv2.resize(pixels, (new_w, new_h), interpolation=_INTERPOLATION[spec.interpolation])
    if spec.resize is ResizePolicy.LETTERBOX:
        box = letterbox_geometry(height, width, spec)
        bottom, right = spec.size[0] - new_h - box.top, spec.size[1] - new_w - box.left
        if box.top or bottom or box.left or right:
            pad = float(spec.pad_value)
            pixels = cv2.copyMakeBorder(pixels, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=(pad, pad, pad))
        return pixels
    if spec.resize is ResizePolicy.SHORTER_SIDE_CENTER_CROP:
        crop_h, crop_w = spec.size
        if crop_h > new_h or crop_w > new_w:
            raise InputError(f"Crop {spec.size} is larger than the resized image {(new_h, new_w)}; raise resize_shorter.")
        top = int(round((new_h - crop_h) / 2.0))
        left = int(round((new_w - crop_w) / 2.0))
        pixels = pixels[top : top + crop_h, left : left + crop_w]
    return pixels
