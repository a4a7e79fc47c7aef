"""Enumerations shared by every stage (typed options instead of free strings)."""

from __future__ import annotations

from ._compat.enum import StrEnum


class Format(StrEnum):
    """Model file formats a bundle can hold."""

    TORCH = "torch"
    ONNX = "onnx"
    OPENVINO = "openvino"
    TFLITE = "tflite"


class Precision(StrEnum):
    """Numeric precision of a bundle's weights/compute."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"  # OpenVINO on CPUs with AVX512-BF16/AMX: weights stored fp16, computed in bfloat16
    INT8 = "int8"


class Task(StrEnum):
    """What a bundle's model does; every stage (parity, accuracy guard, bench metric, stream head) follows it."""

    CLASSIFY = "classify"  # one logits vector per image
    DETECT = "detect"  # boxes, scores and classes per image (raw head output; NMS runs on the device)
    SEGMENT = "segment"  # one class per pixel (raw per-pixel class scores; argmax + letterbox inverse on the device)


class DetectionLayout(StrEnum):
    """How a detector's raw output tensor is laid out (see `edgevision.tasks.detect`)."""

    # [N, 4 + classes, candidates]: box (4 numbers, see BoxFormat) then one score per class, already
    # sigmoid; the layout Ultralytics YOLOv8/YOLO11 exports and edgevision's own detector write.
    BOXES_SCORES = "boxes_scores"


class SegmentationLayout(StrEnum):
    """How a segmenter's raw output tensor is laid out (see `edgevision.tasks.segment`)."""

    # [N, classes, h, w] float: one score (logit) per class per pixel; h×w is the model input's size or a
    # fraction of it (the device upsamples). torchvision's segmentation models and most exports write this.
    CLASS_SCORES = "class_scores"
    # [N, h, w] integer class ids (the argmax already inside the graph).
    CLASS_IDS = "class_ids"


class BoxFormat(StrEnum):
    CXCYWH = "cxcywh"  # centre x, centre y, width, height
    XYXY = "xyxy"  # left, top, right, bottom


class Layout(StrEnum):
    NCHW = "NCHW"
    NHWC = "NHWC"


class ColorOrder(StrEnum):
    RGB = "RGB"
    BGR = "BGR"


class ResizePolicy(StrEnum):
    """How an image of any size becomes the model's input size."""

    RESIZE = "resize"  # stretch to exactly H×W
    SHORTER_SIDE_CENTER_CROP = "shorter_side_center_crop"  # ImageNet style
    LETTERBOX = "letterbox"  # keep the aspect ratio, pad the rest (detectors): boxes map back exactly


def parse_enum_list(enum: type[StrEnum], text: str, *, option: str) -> list:
    """Parse 'a,b' into enum members with an error naming the valid values."""
    from .errors import ConfigError, did_you_mean

    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            values.append(enum(part.lower()) if part.lower() in enum._value2member_map_ else enum(part))
        except ValueError:
            valid = [m.value for m in enum]
            raise ConfigError(
                f"Unknown {option} {part!r}. Choose from: {', '.join(valid)}.{did_you_mean(part, valid)}"
            ) from None
    if not values:
        raise ConfigError(f"{option} needs at least one value.")
    return values


def parse_one_enum(enum: type[StrEnum], value: object, *, option: str):  # noqa: ANN201
    """`value` as one member of `enum` (members pass through), with the same errors as parse_enum_list."""
    from .errors import ConfigError

    if isinstance(value, enum):
        return value
    parsed = parse_enum_list(enum, str(value), option=option)
    if len(parsed) != 1:
        raise ConfigError(f"Give one {option} per call, got {value!r}.")
    return parsed[0]
