"""The device's numpy/OpenCV preprocessing equals the torch transform used in training."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision import InputSpec, PreprocessSpec, errors
from edgevision.preprocess import PARITY_TOLERANCE, preprocess_batch, preprocess_image
from edgevision.types import ColorOrder, Layout, ResizePolicy

torch = pytest.importorskip("torch")

SPECS = [
    PreprocessSpec(size=(32, 32)),
    PreprocessSpec(size=(48, 40), color_order=ColorOrder.BGR),
    PreprocessSpec(size=(64, 64), resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP, resize_shorter=72),
    PreprocessSpec(size=(32, 32), interpolation="nearest", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
]
SIZES = [(32, 32), (8, 8), (480, 640), (101, 77), (300, 200)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.resize.value}-{s.size}-{s.interpolation}-{s.color_order.value}")
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_numpy_matches_torch_training_transform(spec, size):
    from edgevision.data.transforms import eval_transform

    image = np.random.default_rng(size[0]).integers(0, 256, (*size, 3), dtype=np.uint8)
    device_side = preprocess_image(image, spec).transpose(2, 0, 1)
    torch_side = eval_transform(spec)(image).numpy()
    assert device_side.shape == torch_side.shape == (3, *spec.size)
    assert np.max(np.abs(device_side - torch_side)) <= PARITY_TOLERANCE


def test_colour_order_is_applied():
    spec = PreprocessSpec(size=(4, 4), mean=(0, 0, 0), std=(1, 1, 1))
    blue_bgr = np.zeros((4, 4, 3), np.uint8)
    blue_bgr[..., 0] = 255
    rgb = preprocess_image(blue_bgr, spec, image_order=ColorOrder.BGR)
    assert rgb[0, 0].tolist() == [0.0, 0.0, 1.0]


def test_batch_layout_and_dtype():
    spec = PreprocessSpec(size=(16, 16))
    images = [np.zeros((20, 30, 3), np.uint8), np.full((10, 10), 200, np.uint8)]
    nchw = preprocess_batch(images, spec, InputSpec(name="x", shape=(-1, 3, 16, 16)))
    nhwc = preprocess_batch(images, spec, InputSpec(name="x", shape=(1, 16, 16, 3), layout=Layout.NHWC))
    assert nchw.shape == (2, 3, 16, 16) and nchw.dtype == np.float32
    np.testing.assert_array_equal(nchw.transpose(0, 2, 3, 1), nhwc)


def test_bad_images_are_clear_errors():
    spec = PreprocessSpec(size=(16, 16))
    with pytest.raises(errors.InputError, match="H×W×3"):
        preprocess_image(np.zeros((4, 4, 5), np.uint8), spec)
    with pytest.raises(errors.InputError, match="numpy array"):
        preprocess_image([[0]], spec)
    with pytest.raises(errors.InputError, match="No images"):
        preprocess_batch([], spec, InputSpec(name="x", shape=(-1, 3, 16, 16)))


# -- letterbox (detectors) -----------------------------------------------------------------------


def _letterbox_spec(size: tuple[int, int] = (160, 160)):  # noqa: ANN202
    from edgevision.bundle import PreprocessSpec
    from edgevision.types import ResizePolicy

    return PreprocessSpec(size=size, resize=ResizePolicy.LETTERBOX, stride=32, mean=(0, 0, 0), std=(1, 1, 1))


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_the_pad_value() -> None:
    from edgevision.preprocess import letterbox_geometry, preprocess_image

    spec = _letterbox_spec()
    image = np.full((240, 320, 3), 255, dtype=np.uint8)
    box = letterbox_geometry(240, 320, spec)
    assert (box.scale, box.resized, box.top, box.left) == (0.5, (120, 160), 20, 0)
    pixels = preprocess_image(image, spec)
    assert pixels.shape == (160, 160, 3)
    np.testing.assert_allclose(pixels[:20], 114 / 255, atol=1e-6)  # padding above
    np.testing.assert_allclose(pixels[140:], 114 / 255, atol=1e-6)  # and below
    np.testing.assert_allclose(pixels[20:140], 1.0, atol=1e-6)  # the image, scaled


def test_letterbox_boxes_map_back_to_the_original_frame() -> None:
    from edgevision.preprocess import letterbox_geometry

    box = letterbox_geometry(480, 640, _letterbox_spec((192, 192)))
    original = np.array([[0, 0, 640, 480], [100.5, 40, 300, 250]], dtype=np.float32)
    np.testing.assert_allclose(box.to_source(box.to_input(original)), original, atol=1e-4)
    # a box inside the top padding (above the picture) clips to the frame's top edge: zero height
    x1, y1, x2, y2 = box.to_source(np.array([[0, 0, 5, 5]]))[0].tolist()
    assert (y1, y2) == (0, 0) and x2 == pytest.approx(5 / box.scale)


def test_letterbox_size_must_be_a_multiple_of_the_stride() -> None:
    import pydantic

    from edgevision.bundle import PreprocessSpec

    with pytest.raises(pydantic.ValidationError, match="multiple of the model's stride 32"):
        PreprocessSpec(size=(100, 160), resize="letterbox", stride=32)
