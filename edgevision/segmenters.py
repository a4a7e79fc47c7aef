"""edgevision's own small segmenter: torchvision's LRASPP head on a MobileNetV3-Small, exported as one tensor.

Why this architecture: Lite R-ASPP is the segmentation head MobileNetV3 was published with, and torchvision
maintains it (`torchvision.models.segmentation.lraspp.LRASPP`): a 1×1 conv branch gated by a global average
pool over the deep features, plus a 1×1 classifier on shallow features, summed — convs, a pool, a sigmoid,
bilinear resizes: ops ONNX, OpenVINO and TFLite all take, with no data-dependent shapes.

Two choices differ from torchvision's `lraspp_mobilenet_v3_large`, both for the digits' thin strokes (2–6 px
at 160×192):
- "low" is the stride-4 block (torchvision takes stride 8): the low classifier is what draws boundaries, and
  a stroke is narrower than one stride-8 cell;
- the last stage is dilated (as torchvision's), so "high" stays at stride 16: a 14–48 px digit still covers
  a few cells of the features that tell 3 from 8.
The head's logits are resized (bilinear, inside the graph) to the input size: the output is
`[N, classes, H, W]`, and the device's argmax needs no upsampling of its own.

Random init, no downloads. BatchNorm momentum is raised to 0.1 (MobileNetV3's 0.01 is too slow for a
few-minute run, as in `edgevision.detectors`).
"""

from __future__ import annotations

from typing import Any

from torch import nn  # workstation-side: imported only to build or train the segmenter

from .bundle import SegmentationSpec
from .errors import ConfigError
from .types import SegmentationLayout

ARCHITECTURE = "lraspp_digits"
#: The output's name in every export: per-pixel logits, the name exporters give any non-detection output.
OUTPUT_NAME = "logits"
#: Input sides must be a multiple of this: the backbone's deepest stride (16: its last stage is dilated).
INPUT_MULTIPLE = 16
#: MobileNetV3-Small `features` indices feeding the head: block 1 (stride 4, 16 ch), block 12 (stride 16, 576 ch).
LOW_LAYER, HIGH_LAYER = 1, 12
INTER_CHANNELS = 128  # torchvision's default width of the head's deep branch


def build_lraspp_segmenter(*, num_classes: int, input_size: tuple[int, int] | int | None = None) -> Any:
    """The deployable segmenter from random init (registered as `lraspp_digits` in CUSTOM_ARCHITECTURES)."""
    if input_size is None:
        raise ConfigError(f"{ARCHITECTURE} needs input_size=(height, width), a multiple of {INPUT_MULTIPLE} on each side.")
    return LRASPPSegmenter(num_classes=num_classes, input_size=input_size)


def segmentation_spec() -> SegmentationSpec:
    """How the device decodes `LRASPPSegmenter`'s output: argmax over [N, classes, H, W] logits, 0 = background."""
    return SegmentationSpec(output=OUTPUT_NAME, layout=SegmentationLayout.CLASS_SCORES, background_class=0)


def _as_size(input_size: tuple[int, int] | int) -> tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(s) for s in input_size)
    if len(size) != 2 or any(s <= 0 or s % INPUT_MULTIPLE for s in size):
        raise ConfigError(
            f"{ARCHITECTURE} input size {input_size} must be (height, width), each a positive multiple of "
            f"{INPUT_MULTIPLE}; e.g. (160, 192)."
        )
    return size  # type: ignore[return-value]


class LRASPPSegmenter(nn.Module):
    """torchvision LRASPP (as `.lraspp`) whose forward returns the logits tensor alone, at the input size."""

    def __init__(self, *, num_classes: int, input_size: tuple[int, int] | int) -> None:
        super().__init__()
        if num_classes < 2:
            raise ConfigError(f"A segmenter needs at least 2 classes (background and one object), got {num_classes}.")
        self.input_size = _as_size(input_size)
        self.num_classes = num_classes
        self.lraspp = _build_lraspp(num_classes)

    def forward(self, images):
        """images N×3×H×W (letterboxed, normalised) → logits [N, classes, H, W]."""
        return self.lraspp(images)["out"]


def _build_lraspp(num_classes: int) -> Any:
    from ._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.lraspp import LRASPP

    features = torchvision.models.mobilenet_v3_small(weights=None, dilated=True).features
    for layer in features.modules():
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.1
    low_channels, high_channels = features[LOW_LAYER].out_channels, features[HIGH_LAYER].out_channels
    backbone = IntermediateLayerGetter(features, return_layers={str(LOW_LAYER): "low", str(HIGH_LAYER): "high"})
    return LRASPP(backbone, low_channels, high_channels, num_classes, inter_channels=INTER_CHANNELS)
