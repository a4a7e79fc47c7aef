"""edgevision's own small detector: torchvision's FCOS on a MobileNetV3-Small FPN, exported as one raw head.

Why this architecture: FCOS is anchor-free (one candidate per feature-map location, no anchor shapes
to tune for a new data set) and torchvision maintains every part of it — head, losses, centre sampling,
box coder, anchor grid — so edgevision writes no training machinery of its own. MobileNetV3-Small is
the cheapest torchvision backbone that trains from random init on 2 CPU cores in minutes; a 64-wide
FPN over its stride 8/16/32 features and a two-conv head keep the graph to convs and elementwise ops.

Two views of one set of weights:
- `FCOSDetector.fcos` is torchvision's FCOS, used for training (its forward takes image lists and
  targets and returns the losses). Its internal transform is made a no-op: edgevision's letterbox
  preprocessing has already resized and normalised the input.
- `FCOSDetector.forward` is the deployable graph exported to every engine: images N×3×H×W →
  one tensor [N, 4 + classes, candidates] (centre-x, centre-y, w, h as fractions 0..1 of the input,
  then one score per class in 0..1: sqrt(sigmoid(class) · sigmoid(centerness)), the score torchvision's
  FCOS ranks by). The anchor grid for the fixed input size is a precomputed buffer, so the graph has no
  data-dependent ops; decoding (threshold, NMS, letterbox inverse) happens on the device, outside it.
"""

from __future__ import annotations

from typing import Any

from torch import nn  # this module is workstation-side: it is imported only to build or train the detector

from .bundle import DetectionSpec
from .errors import ConfigError
from .types import BoxFormat, DetectionLayout

ARCHITECTURE = "fcos_digits"
STRIDES = (8, 16, 32)
FPN_WIDTH = 64
HEAD_CONVS = 2
#: MobileNetV3-Small `features` indices whose outputs have strides 8, 16, 32, and their channels.
_RETURN_LAYERS = {"3": "0", "8": "1", "12": "2"}
_IN_CHANNELS = [24, 48, 576]
OUTPUT_NAME = "boxes_scores"


def build_fcos_detector(*, num_classes: int, input_size: tuple[int, int] | int | None = None) -> Any:
    """The deployable detector from random init (registered as `fcos_digits` in CUSTOM_ARCHITECTURES)."""
    if input_size is None:
        raise ConfigError("fcos_digits needs input_size=(height, width), a multiple of 32 on each side.")
    return FCOSDetector(num_classes=num_classes, input_size=input_size)


def detection_spec(
    *, score_threshold: float = 0.25, iou_threshold: float = 0.5, max_detections: int = 100
) -> DetectionSpec:
    """How the device decodes `FCOSDetector`'s output (normalised centre-xywh, sigmoid scores, per-class NMS)."""
    return DetectionSpec(
        output=OUTPUT_NAME, layout=DetectionLayout.BOXES_SCORES, box_format=BoxFormat.CXCYWH,
        normalized_boxes=True, score_threshold=score_threshold, iou_threshold=iou_threshold,
        max_detections=max_detections, class_agnostic=False, strides=STRIDES,
    )


def _as_size(input_size: tuple[int, int] | int) -> tuple[int, int]:
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(s) for s in input_size)
    if len(size) != 2 or any(s <= 0 or s % max(STRIDES) for s in size):
        raise ConfigError(
            f"fcos_digits input size {input_size} must be (height, width), each a positive multiple of {max(STRIDES)}."
        )
    return size  # type: ignore[return-value]


class FCOSDetector(nn.Module):
    """torchvision FCOS (as `.fcos`, for training) plus the raw-head forward that export sees."""

    def __init__(self, *, num_classes: int, input_size: tuple[int, int] | int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be at least 1, got {num_classes}.")
        self.input_size = _as_size(input_size)
        self.num_classes = num_classes
        self.fcos = _build_fcos(num_classes, self.input_size)
        centres, sizes = _anchor_grid(self.fcos, self.input_size)
        self.register_buffer("anchor_centres", centres, persistent=False)  # A×2, fractions of (w, h)
        self.register_buffer("anchor_sizes", sizes, persistent=False)  # A×2, fractions of (w, h)

    def forward(self, images):
        """images N×3×H×W (letterboxed, normalised) → [N, 4 + classes, candidates]."""
        import torch

        features = list(self.fcos.backbone(images).values())
        head = self.fcos.head(features)
        codes = head["bbox_regression"]  # N×A×4: (left, top, right, bottom) in units of the anchor size
        # torchvision's BoxLinearCoder.decode, then its clip to the image, in fractions of the input
        top_left = torch.clamp(self.anchor_centres - codes[..., :2] * self.anchor_sizes, 0.0, 1.0)
        bottom_right = torch.clamp(self.anchor_centres + codes[..., 2:] * self.anchor_sizes, 0.0, 1.0)
        centre, size = (top_left + bottom_right) * 0.5, bottom_right - top_left
        scores = torch.sqrt(torch.sigmoid(head["cls_logits"]) * torch.sigmoid(head["bbox_ctrness"]))
        return torch.cat([centre, size, scores], dim=2).permute(0, 2, 1)


def _build_fcos(num_classes: int, input_size: tuple[int, int]) -> Any:
    from ._compat.torchvision_ops import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torchvision
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.fcos import FCOSHead
    from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

    class _NoExtraLevel(ExtraFPNBlock):
        """Keep strides 8/16/32: the default extra max-pool level (stride 64) has nothing to find here."""

        def forward(self, results, x, names):
            return results, names

    features = torchvision.models.mobilenet_v3_small(weights=None).features
    for layer in features.modules():  # MobileNetV3's BN momentum 0.01 is too slow for a few-minute run
        if isinstance(layer, nn.BatchNorm2d):
            layer.momentum = 0.1
    backbone = BackboneWithFPN(features, _RETURN_LAYERS, _IN_CHANNELS, FPN_WIDTH, extra_blocks=_NoExtraLevel())
    anchors = AnchorGenerator(tuple((s,) for s in STRIDES), ((1.0,),) * len(STRIDES))
    head = FCOSHead(FPN_WIDTH, anchors.num_anchors_per_location()[0], num_classes, num_convs=HEAD_CONVS)
    side = max(input_size)
    # mean 0 / std 1 and min = max = the input size: the transform neither normalises nor resizes.
    return FCOS(
        backbone, num_classes, min_size=side, max_size=side, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0],
        anchor_generator=anchors, head=head,
    )


def _anchor_grid(fcos: Any, input_size: tuple[int, int]) -> tuple[Any, Any]:
    """FCOS's own anchors for a fixed input size, as normalised centres and sizes (A×2 each)."""
    import torch
    from torchvision.models.detection.image_list import ImageList

    height, width = input_size
    images = ImageList(torch.zeros(1, 3, height, width), [(height, width)])
    feature_shapes = [torch.zeros(1, 1, height // s, width // s) for s in STRIDES]
    boxes = fcos.anchor_generator(images, feature_shapes)[0]  # A×4 xyxy pixels, level by level
    scale = torch.tensor([width, height], dtype=torch.float32)
    centres = (boxes[:, :2] + boxes[:, 2:]) * 0.5 / scale
    sizes = (boxes[:, 2:] - boxes[:, :2]) / scale
    return centres.contiguous(), sizes.contiguous()
