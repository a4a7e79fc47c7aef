"""Bundle + Manifest: the one object that moves a model between stages.

A bundle is a directory holding the model file(s) and ``edgevision.json``. The manifest
carries everything a device needs to feed the model correctly (input spec, preprocessing,
labels) and the evidence that the export is faithful (parity report, source hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import BundleError, ManifestError, ModelFileError
from .types import (
    BoxFormat, ColorOrder, DetectionLayout, Format, Layout, Precision, ResizePolicy, SegmentationLayout, Task,
)

MANIFEST_NAME = "edgevision.json"
#: 1: classification only (one `output_name`). 2: `task`, every output described, detection decoding,
#: segmentation decoding (an optional `segmentation` section: bundles without it read as before).
SCHEMA_VERSION = 2


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class InputSpec(_Strict):
    """The tensor the engine expects. A batch dimension of -1 means any batch size."""

    name: str
    shape: tuple[int, int, int, int]
    layout: Layout = Layout.NCHW
    dtype: str = "float32"

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape[0] == 0 or shape[0] < -1 or any(d <= 0 for d in shape[1:]):
            raise ValueError(f"shape {shape} must be positive (batch may be -1 for dynamic)")
        return shape

    @property
    def height(self) -> int:
        return self.shape[2] if self.layout is Layout.NCHW else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.layout is Layout.NCHW else self.shape[2]

    @property
    def channels(self) -> int:
        return self.shape[1] if self.layout is Layout.NCHW else self.shape[3]

    @property
    def dynamic_batch(self) -> bool:
        return self.shape[0] == -1

    def with_layout(self, layout: Layout) -> InputSpec:
        """The same tensor described in another layout."""
        if layout is self.layout:
            return self
        n, c, h, w = self.shape[0], self.channels, self.height, self.width
        shape = (n, c, h, w) if layout is Layout.NCHW else (n, h, w, c)
        return self.model_copy(update={"layout": layout, "shape": shape})


class PreprocessSpec(_Strict):
    """How a raw image (uint8, any size) becomes the model input. Applied by every engine."""

    color_order: ColorOrder = ColorOrder.RGB
    resize: ResizePolicy = ResizePolicy.RESIZE
    size: tuple[int, int]  # (height, width) fed to the model
    resize_shorter: int | None = None  # for shorter_side_center_crop; default = max(size)
    interpolation: str = "bilinear"
    pad_value: float = Field(default=114.0, ge=0, le=255)  # letterbox border, in raw pixel units (0..255)
    stride: int = Field(default=1, ge=1)  # letterbox: the model's largest stride; `size` must be a multiple
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    @field_validator("std")
    @classmethod
    def _nonzero_std(cls, std: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(s <= 0 for s in std):
            raise ValueError(f"std {std} must be > 0")
        return std

    @field_validator("interpolation")
    @classmethod
    def _known_interpolation(cls, value: str) -> str:
        if value not in {"bilinear", "nearest"}:
            raise ValueError(f"interpolation {value!r} must be 'bilinear' or 'nearest'")
        return value

    @model_validator(mode="after")
    def _stride_aligned(self) -> PreprocessSpec:
        if any(side % self.stride for side in self.size):
            raise ValueError(f"size {tuple(self.size)} is not a multiple of the model's stride {self.stride}")
        return self


class OutputSpec(_Strict):
    """One output tensor of the model. -1 marks a dynamic dimension (the batch, a dynamic count)."""

    name: str
    shape: tuple[int, ...] = Field(min_length=1)
    dtype: str = "float32"
    meaning: str  # "logits" (classify), "boxes_scores" (detect raw head), or what a custom task says


class DetectionSpec(_Strict):
    """How the device turns a detector's raw output into boxes (decode + NMS happen outside the graph)."""

    output: str  # which OutputSpec holds the raw head
    layout: DetectionLayout = DetectionLayout.BOXES_SCORES
    box_format: BoxFormat = BoxFormat.CXCYWH
    normalized_boxes: bool  # True: 0..1 of the model input (edgevision's detector); False: input pixels (YOLO)
    score_threshold: float = Field(default=0.25, ge=0, le=1)  # deployment default; mAP evaluation uses a low one
    iou_threshold: float = Field(default=0.45, gt=0, le=1)
    max_detections: int = Field(default=100, gt=0)
    class_agnostic: bool = False  # True: one NMS over all classes; False: boxes of different classes never suppress
    strides: tuple[int, ...] = ()  # the feature strides the candidates come from (documentation; decoding needs none)


class SegmentationSpec(_Strict):
    """How the device turns a segmenter's raw output into a class per pixel of the original frame."""

    output: str  # which OutputSpec holds the per-pixel scores (or ids)
    layout: SegmentationLayout = SegmentationLayout.CLASS_SCORES
    background_class: int | None = Field(default=0, ge=0)  # index into labels; None: every class is an object
    ignore_index: int = Field(default=255, ge=0, le=255)  # mask value that scores nothing (unlabelled pixels)


class ParityReport(_Strict):
    """How closely the exported model reproduces its source on sample inputs."""

    samples: int = Field(gt=0)
    max_abs_diff: float = Field(ge=0)
    mean_abs_diff: float = Field(ge=0)
    top1_agreement: float = Field(ge=0, le=1)
    min_top1_agreement: float = Field(ge=0, le=1)
    engine: str
    engine_precision: str  # what the engine actually computed in (e.g. OpenVINO f32 vs bf16)
    passed: bool
    data: str = "random"  # "random" or the data folder / split the samples came from
    task: Task = Task.CLASSIFY
    # detect: the export's detections scored as mAP50 against the source model's detections as ground truth
    detection_map50: float | None = Field(default=None, ge=0, le=1)
    min_detection_map50: float | None = Field(default=None, ge=0, le=1)
    # segment: mean IoU of the export's masks against the source model's masks (the source's as ground truth)
    mask_miou: float | None = Field(default=None, ge=0, le=1)
    min_mask_miou: float | None = Field(default=None, ge=0, le=1)
    # segment: how many classes the source's masks held over all inputs (1: a constant model; parity not established)
    mask_classes: int | None = Field(default=None, ge=0)
    # classify: how far the source's logits move over the inputs (the largest range of any one logit, as a fraction
    # of the largest |logit|); below MIN_OUTPUT_SPREAD the outputs do not vary and parity is not established
    output_spread: float | None = Field(default=None, ge=0)
    # classify: how many classes the source's top-1 took over the inputs (1, where no logit tolerance applies as at
    # INT8: every input agrees on the same class and top-1 agreement proves nothing; not established)
    source_classes: int | None = Field(default=None, ge=0)
    # classify: the allowed max |Δlogit| as a fraction of the largest |logit| (None: no logit tolerance, as at INT8)
    relative_tolerance: float | None = Field(default=None, ge=0)
    # detect: boxes the source model found over all inputs (0: any export that finds none agrees; not established)
    source_detections: int | None = Field(default=None, ge=0)


class SourceInfo(_Strict):
    architecture: str | None = None
    sha256: str  # hash of the source weights/model the bundle was made from
    framework: str = "torch"


class Manifest(_Strict):
    """Everything in edgevision.json. Unknown keys are rejected so typos surface early."""

    schema_version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)] = SCHEMA_VERSION
    name: str
    task: Task = Task.CLASSIFY
    format: Format
    precision: Precision
    model_files: tuple[str, ...] = Field(min_length=1)  # first is the one engines open
    file_bytes: dict[str, int] = Field(default_factory=dict)  # size of each model file, to catch truncation
    input: InputSpec
    outputs: tuple[OutputSpec, ...] = Field(min_length=1)  # in the order engines return them; first is primary
    num_classes: int = Field(gt=0)
    preprocess: PreprocessSpec
    labels: tuple[str, ...]
    detection: DetectionSpec | None = None  # task detect: how to decode the raw output
    segmentation: SegmentationSpec | None = None  # task segment: how to decode the per-pixel output
    source: SourceInfo
    versions: dict[str, str] = Field(default_factory=dict)
    parity: ParityReport | None = None
    compression: dict[str, str] = Field(default_factory=dict)  # stage → summary, human readable
    # how the model file was made when a format has more than one way (OpenVINO: "torch trace", or "onnx" and why)
    conversion: str | None = None
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: object) -> object:
        """Schema 1 (and callers written for it) named one logits output: describe it as `outputs`."""
        if isinstance(data, dict) and "output_name" in data and "outputs" not in data:
            data = dict(data)
            name = data.pop("output_name")
            data["outputs"] = [{"name": name, "shape": [-1, data.get("num_classes", 1)], "meaning": "logits"}]
            data["schema_version"] = SCHEMA_VERSION
        return data

    @model_validator(mode="after")
    def _labels_match_classes(self) -> Manifest:
        if self.labels and len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels given for {self.num_classes} classes")
        if self.input.channels != 3:
            raise ValueError(f"input has {self.input.channels} channels; edgevision models take 3 (colour)")
        if (self.input.height, self.input.width) != tuple(self.preprocess.size):
            raise ValueError(
                f"preprocess size {tuple(self.preprocess.size)} differs from the input's "
                f"{(self.input.height, self.input.width)}"
            )
        names = [o.name for o in self.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"output names {names} repeat")
        if self.task is Task.DETECT:
            if self.detection is None:
                raise ValueError("a detect bundle needs `detection` (how to decode its raw output)")
            if self.detection.output not in names:
                raise ValueError(f"detection.output {self.detection.output!r} is not among the outputs {names}")
        elif self.detection is not None:
            raise ValueError(f"`detection` is only for task detect, not {self.task.value}")
        if self.task is Task.SEGMENT:
            if self.segmentation is None:
                raise ValueError("a segment bundle needs `segmentation` (how to decode its per-pixel output)")
            if self.segmentation.output not in names:
                raise ValueError(f"segmentation.output {self.segmentation.output!r} is not among the outputs {names}")
            background = self.segmentation.background_class
            if background is not None and background >= self.num_classes:
                raise ValueError(f"segmentation.background_class {background} is not one of the {self.num_classes} classes")
        elif self.segmentation is not None:
            raise ValueError(f"`segmentation` is only for task segment, not {self.task.value}")
        return self

    @property
    def model_file(self) -> str:
        return self.model_files[0]

    @property
    def output_name(self) -> str:
        """The primary output (classification: the logits). Schema 1 stored only this."""
        return self.outputs[0].name

    def output(self, name: str) -> OutputSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


class Bundle:
    """A bundle directory on disk with its validated manifest."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Bundle:
        """Open a bundle directory; raises a one-line error for anything missing or invalid."""
        path = Path(path)
        if not path.exists():
            raise BundleError(f"Bundle {path} does not exist. Create one with `edgevision export`.")
        if not path.is_dir():
            raise BundleError(f"{path} is a file, not a bundle directory. Pass the folder holding {MANIFEST_NAME}.")
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ManifestError(
                f"{path} has no {MANIFEST_NAME}; it is not an edgevision bundle. Re-export it with `edgevision export`."
            )
        manifest = read_manifest(manifest_path)
        for name in manifest.model_files:
            file = path / name
            if not file.is_file():
                raise ModelFileError(
                    f"Bundle {path} is missing its model file {name!r}. Copy the whole bundle folder, or re-export."
                )
            expected = manifest.file_bytes.get(name)
            if expected is not None and file.stat().st_size != expected:
                raise ModelFileError(
                    f"{file} is {file.stat().st_size} bytes but the manifest says {expected}: the file is truncated "
                    "or was replaced. Copy it again, or re-export the bundle."
                )
        return cls(path, manifest)

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the model files (what a device must store)."""
        return sum((self.path / name).stat().st_size for name in self.manifest.model_files)

    @property
    def parity_passed(self) -> bool:
        return self.manifest.parity is not None and self.manifest.parity.passed

    def __repr__(self) -> str:
        m = self.manifest
        return f"Bundle({str(self.path)!r}, format={m.format.value}, precision={m.precision.value})"


def read_manifest(manifest_path: Path) -> Manifest:
    try:
        raw = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{manifest_path} is not valid JSON ({exc}). Re-export the bundle.") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ManifestError(f"{manifest_path} is invalid: {_summarise(exc)}. Re-export the bundle.") from None


def _summarise(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "manifest"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {msg}")
    more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
    return "; ".join(parts) + more


@contextlib.contextmanager
def atomic_directory(final_path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp dir beside `final_path`; rename it into place only if the block succeeds.

    A failed export therefore never leaves a half-written bundle behind.
    """
    final_path = Path(final_path)
    if final_path.exists() and not overwrite:
        raise BundleError(f"{final_path} already exists. Choose another output or pass overwrite=True (--force).")
    final_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.", dir=final_path.parent))
    try:
        yield tmp
        if final_path.exists():
            shutil.rmtree(final_path)
        os.replace(tmp, final_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = directory / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
