""""ONNX in": a classifier or a YOLO-style detector exported to ONNX by any framework, brought into edgevision.

The graph gives the input name, layout (NCHW, or NHWC as TensorFlow exports) and batch; a batch
of -1, 0 or a symbolic name is dynamic. A dynamic height/width is accepted when the caller names
the size (the bundle's input is then fixed to it). Labels come from the model's metadata when an
exporter wrote them there (Ultralytics: ``names`` as a dict string; others: ``labels`` or
``classes`` as a JSON list); a caller's list that disagrees with them is an error, since a wrong
order silently scores as a wrong model. Preprocessing is not in the file: the caller gives it.
From there it goes where a torch model goes after compression: FP32/FP16 ONNX or OpenVINO
bundles (`export_onnx_model`), INT8 (`edgevision.compress.quantize.quantize`), and
`edgevision.bench`. Parity is checked against the original file through ONNX Runtime. Pruning
and distillation need the torch model's layers and weights: asking them of an ONNX model is a
CompressionError.

Detectors (`task=Task.DETECT`, or metadata ``task: detect`` as Ultralytics writes it) take the
Ultralytics YOLOv8/YOLO11 contract: one output [N, 4 + classes, candidates], centre-x/y, w, h in
input pixels, scores already sigmoid. The metadata's ``names``, ``imgsz`` (the size a dynamic
H/W is fixed to) and ``stride`` give labels and the letterbox; the default preprocessing and NMS
settings are Ultralytics' own (`ultralytics_preprocess`, `ultralytics_detection`), so the
bundle finds the boxes `yolo predict` finds on the same export.

Semantic segmenters (`task=Task.SEGMENT`) take the contract torchvision's segmentation models export: one
output [N, classes, h, w] of per-pixel class scores, h×w the input size or a whole stride of it
(`edgevision.tasks.segment.check_class_scores`), argmax on the device. The caller gives the
preprocessing (it must letterbox, so masks map back to each frame); class 0 is the background when the
first label says so ("background", "__background__", "bg").
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..bundle import Bundle, DetectionSpec, PreprocessSpec, SegmentationSpec, atomic_directory, sha256_file
from ..errors import CompressionError, ConfigError, ModelFileError
from ..export.base import ExportArtifact, package_version
from ..export.parity import DEFAULT_PARITY, ParityConfig, open_parity_data
from ..export.writer import BundleChecks, finish_bundle
from ..source import LabelledInput
from ..types import BoxFormat, ColorOrder, Format, Layout, Precision, ResizePolicy, Task, parse_one_enum

MODEL_FILE = "model.onnx"
#: protobuf's limit for one ONNX file; larger models need external data, which bundles do not carry yet.
MAX_SINGLE_FILE_BYTES = 2**31 - 1
#: metadata_props keys exporters use for the class names, in the order they are looked for.
LABEL_METADATA_KEYS = ("names", "labels", "classes", "class_names")
#: A detector's largest stride when its metadata has none (YOLOv8/YOLO11: P3..P5 → 32).
DEFAULT_STRIDE = 32
#: Ultralytics' `predict` defaults: boxes over 0.25, NMS per class at IoU 0.7 (not edgevision's 0.45: a user's
#: export should show in a bundle the boxes `yolo predict` shows). At most 100 per image, not predict's 300: COCO
#: evaluation (the bench's mAP, parity's agreement mAP50) counts 100 per image, so more would be scored unseen.
YOLO_SCORE_THRESHOLD, YOLO_IOU_THRESHOLD, YOLO_MAX_DETECTIONS = 0.25, 0.7, 100


@dataclass(frozen=True, kw_only=True)
class InputGeometry:
    """What the graph says about its image input. `size` (height, width) is None when H or W is dynamic."""

    layout: Layout
    dynamic_batch: bool
    size: tuple[int, int] | None


def read_geometry(path: str | os.PathLike[str]) -> InputGeometry:
    """The input geometry of the ONNX classifier at `path` (checks one image input, one output)."""
    graph_model = _load(Path(path))
    return _input_geometry(_single_input(graph_model, Path(path)), Path(path))


def metadata_labels(path: str | os.PathLike[str]) -> tuple[list[str], str] | None:
    """(labels, metadata key) when the model's metadata carries its class names, else None."""
    return _labels_from_metadata(_load(Path(path)))


@dataclass(frozen=True, kw_only=True)
class YoloMetadata:
    """What an Ultralytics export writes into metadata_props, parsed; None where it is absent or unreadable."""

    task: str | None = None
    imgsz: tuple[int, int] | None = None  # (height, width)
    stride: int | None = None


def read_yolo_metadata(path: str | os.PathLike[str]) -> YoloMetadata:
    """`task`, `imgsz` and `stride` from the model's metadata (labels: `metadata_labels`)."""
    return _yolo_metadata(_load(Path(path)))


def resolve_task(path: str | os.PathLike[str], task: Task | str | None) -> Task:
    """The task the model at `path` is opened as: the caller's, else the metadata's `task`, else classify.

    A caller's task that contradicts the metadata (an Ultralytics export says what it is) is an error.
    """
    return _resolve_task(Path(path), task, _yolo_metadata(_load(Path(path))).task)


def ultralytics_preprocess(size: tuple[int, int], *, stride: int = DEFAULT_STRIDE) -> PreprocessSpec:
    """Ultralytics' preprocessing: RGB, letterbox with pad 114 (stride-aligned size), pixels / 255, no mean/std."""
    return PreprocessSpec(size=size, resize=ResizePolicy.LETTERBOX, stride=stride, pad_value=114.0, scale=1.0 / 255.0,
                          mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), color_order=ColorOrder.RGB)


def ultralytics_detection(output: str, *, strides: tuple[int, ...] = ()) -> DetectionSpec:
    """How a YOLOv8/YOLO11 raw head decodes: cxcywh in input pixels, per-class NMS, `yolo predict`'s thresholds."""
    return DetectionSpec(output=output, box_format=BoxFormat.CXCYWH, normalized_boxes=False,
                         score_threshold=YOLO_SCORE_THRESHOLD, iou_threshold=YOLO_IOU_THRESHOLD,
                         max_detections=YOLO_MAX_DETECTIONS, class_agnostic=False, strides=strides)


@dataclass(kw_only=True)
class OnnxModel(LabelledInput):
    """An ONNX model plus what the graph cannot say: an `edgevision.source.ModelSource`. Build it with `open`.

    `task` says what its one output holds (classify: logits; detect: the raw
    [N, 4 + classes, candidates] head, decoded by `detection`); `_check_output` checks that
    shape by task (OUTPUT_CHECKS), so a loader for another task adds one entry there.
    """

    path: Path
    labels: list[str]
    preprocess: PreprocessSpec
    input_name: str
    output_name: str
    layout: Layout
    dynamic_batch: bool
    name: str
    producer: str = ""
    notes: dict[str, str] = field(default_factory=dict)
    architecture: str | None = None
    task: Task = Task.CLASSIFY
    detection: DetectionSpec | None = None  # task detect: how the raw output decodes
    segmentation: SegmentationSpec | None = None  # task segment: how the per-pixel scores decode
    _session: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        labels: Sequence[str] | None = None,
        preprocess: PreprocessSpec | None = None,
        task: Task | str | None = None,
        name: str | None = None,
    ) -> OnnxModel:
        """Read `path`, infer its input from the graph, and check one run gives the output `task` promises.

        `labels` default to the model's metadata; given as well, they must equal it (order included).
        `preprocess.size` must match a fixed input size, and sets a dynamic one. `task` None: the
        metadata's `task`, else classify. A detector's `preprocess` defaults to Ultralytics' letterbox
        at the graph's size (dynamic H/W: the metadata's `imgsz`) and the metadata's `stride`;
        a classifier or segmenter has no default (normalisation differs by framework); a segmenter's
        must letterbox.
        """
        path = Path(path)
        graph_model = _load(path)
        value_info = _single_input(graph_model, path)
        geometry = _input_geometry(value_info, path)
        meta = _yolo_metadata(graph_model)
        chosen_task = _resolve_task(path, task, meta.task)
        notes: dict[str, str] = {}
        if preprocess is None:
            preprocess = _default_preprocess(path, chosen_task, geometry, meta)
        if geometry.size is None:
            notes["input"] = f"dynamic height/width fixed to {preprocess.size[0]}×{preprocess.size[1]} (H×W)"
        elif tuple(preprocess.size) != geometry.size:
            raise ConfigError(
                f"preprocess size {tuple(preprocess.size)} differs from the model input {geometry.size} "
                f"(height, width) in {path}; pass PreprocessSpec(size={geometry.size}, ...)."
            )
        label_list, labels_note = _choose_labels(labels, _labels_from_metadata(graph_model), path)
        notes["labels"] = labels_note
        producer = " ".join(p for p in (graph_model.producer_name, graph_model.producer_version) if p)
        model = cls(
            path=path, labels=label_list, preprocess=preprocess, input_name=value_info.name,
            output_name=graph_model.graph.output[0].name, layout=geometry.layout, dynamic_batch=geometry.dynamic_batch,
            name=name or path.stem, producer=producer or "unknown", task=chosen_task,
            notes={"source": f"ONNX file {path.name} made by {producer or 'an unknown producer'}", **notes},
        )
        output = model._check_output()
        if chosen_task is Task.SEGMENT:
            model.segmentation = segmentation_for(model.output_name, label_list)
            background = "none (every class is an object)" if model.segmentation.background_class is None else \
                f"{label_list[0]!r} (class 0)"
            model.notes["segmentation"] = (
                f"per-pixel class scores {tuple(output.shape)} for a {model.input_size[0]}×{model.input_size[1]} input; "
                f"argmax on the device; background {background}"
            )
        if chosen_task is Task.DETECT:
            strides = _candidate_strides(model.input_size, int(output.shape[2]), meta.stride or DEFAULT_STRIDE)
            model.detection = ultralytics_detection(model.output_name, strides=strides)
            model.notes["detection"] = (
                f"raw head {tuple(output.shape)} read as Ultralytics YOLO: cxcywh in input pixels, sigmoid scores; "
                f"NMS per class at IoU {YOLO_IOU_THRESHOLD}, score ≥ {YOLO_SCORE_THRESHOLD} (yolo predict's defaults)"
            )
        return model

    # -- the ModelSource interface (edgevision.source), shared with TrainedModel -----------------
    @property
    def framework(self) -> str:
        return "onnx"

    def weights_sha256(self) -> str:
        return sha256_file(self.path)

    @property
    def module(self) -> Any:
        """There is no torch module: stages that need one (prune, distill, TFLite) stop here."""
        raise CompressionError(
            f"{self.name} is an ONNX model: pruning, distillation and TFLite export need the torch model (its layers "
            "and weights). Quantise it (INT8/FP16), convert it to OpenVINO or benchmark it instead, or load the "
            "original torch checkpoint with edgevision.TrainedModel.load."
        )

    # -- running the original -----------------------------------------------------------------
    def reference_outputs(self, batch: np.ndarray) -> np.ndarray:
        """The original file's primary output (ONNX Runtime, FP32) for an NCHW float32 batch."""
        session = self._ort_session()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.layout is Layout.NHWC:
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        if self.dynamic_batch:
            return session.run([self.output_name], {self.input_name: batch})[0]
        return np.concatenate([session.run([self.output_name], {self.input_name: batch[i : i + 1]})[0] for i in range(len(batch))])

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """A classifier's logits for an NCHW float32 batch (`reference_outputs` by its older name)."""
        return self.reference_outputs(batch)

    def write_fp32(self, path: Path) -> None:
        """The original graph as one self-contained file (external weights folded in).

        The input is written as the bundle runs it: a dynamic batch as the symbol "batch" (some
        tools reject -1), a dynamic height/width fixed to the preprocessing size.
        """
        onnx = require("onnx", extra="onnx", what="onnx")
        proto = onnx.load(str(self.path))
        if proto.ByteSize() > MAX_SINGLE_FILE_BYTES:
            raise ModelFileError(f"{self.path} is over 2 GB; edgevision bundles hold single-file ONNX models up to 2 GB.")
        dims = next(i for i in proto.graph.input if i.name == self.input_name).type.tensor_type.shape.dim
        height_axis = 2 if self.layout is Layout.NCHW else 1
        if self.dynamic_batch:
            dims[0].dim_param = "batch"  # setting the oneof field clears a -1 or 0 dim_value
        for axis, value in zip((height_axis, height_axis + 1), self.input_size, strict=True):
            if not _fixed(dims[axis]):
                dims[axis].dim_value = value
        onnx.save(proto, str(path))

    def artifact(self, *, versions: dict[str, str] | None = None) -> ExportArtifact:
        """How a bundle made from this graph is fed (names, layout, batch)."""
        return ExportArtifact(
            (MODEL_FILE,), self.input_name, self.output_name, layout=self.layout, dynamic_batch=self.dynamic_batch,
            versions={"onnx": package_version("onnx"), "source_producer": self.producer, **(versions or {})},
        )

    def _ort_session(self) -> Any:
        if self._session is None:
            ort = require("onnxruntime", extra="onnx", what="ONNX Runtime")
            options = ort.SessionOptions()
            options.log_severity_level = 3
            try:
                self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as exc:
                raise ModelFileError(f"ONNX Runtime cannot load {self.path}: {_first_line(exc)}") from exc
        return self._session

    def _check_output(self) -> np.ndarray:
        """Run one blank image and check the output has the shape the task promises (see OUTPUT_CHECKS)."""
        height, width = self.input_size
        output = self.reference_outputs(np.zeros((1, 3, height, width), dtype=np.float32))
        OUTPUT_CHECKS[self.task](self, output)
        return output


def _check_logits(model: OnnxModel, output: np.ndarray) -> None:
    if output.ndim == 3 and output.shape[0] == 1 and output.shape[1] > 4:
        raise ConfigError(
            f"{model.path.name} outputs shape {output.shape} for one image, which looks like a detector's raw head "
            f"(1, 4 + classes, candidates), but it was opened as a classifier (task classify expects "
            f"(1, {model.num_classes}) logits). Pass --task detect (task=Task.DETECT)."
        )
    if output.ndim != 2 or output.shape != (1, model.num_classes):
        raise ConfigError(
            f"{model.path} outputs shape {output.shape} for one image; expected (1, {model.num_classes}) logits, "
            f"one per label ({model.num_classes} labels given)."
        )


def _check_boxes_scores(model: OnnxModel, output: np.ndarray) -> None:
    rows = 4 + model.num_classes
    expected = f"task detect expects a detector's raw head (1, 4 + classes, candidates) = (1, {rows}, A)"
    if output.ndim == 2:
        raise ConfigError(
            f"{model.path.name} outputs shape {output.shape} for one image, which looks like a classifier's logits; "
            f"{expected}. Pass --task classify (task=Task.CLASSIFY) for a classifier."
        )
    if output.ndim == 3 and output.shape[0] == 1 and output.shape[2] == rows and output.shape[1] != rows:
        raise ConfigError(
            f"{model.path.name} outputs shape {output.shape} for one image: candidates first; {expected}, boxes and "
            "scores along axis 1 as Ultralytics exports them. Re-export without transposing the output."
        )
    if output.ndim != 3 or output.shape[:2] != (1, rows):
        found = f" ({output.shape[1] - 4} classes)" if output.ndim == 3 and output.shape[1] > 4 else ""
        raise ConfigError(
            f"{model.path.name} outputs shape {output.shape}{found} for one image; {expected} for its "
            f"{model.num_classes} labels (4 box numbers, then one score per class). Check the labels, or the task."
        )


def _check_class_scores(model: OnnxModel, output: np.ndarray) -> None:
    from ..tasks.segment import check_class_scores

    if model.preprocess.resize is not ResizePolicy.LETTERBOX:
        raise ConfigError(
            f"A segmenter's masks map back to each frame through a letterbox; {model.path.name} was given resize "
            f"{model.preprocess.resize.value}. Pass PreprocessSpec(resize=ResizePolicy.LETTERBOX, ...) (--resize letterbox)."
        )
    check_class_scores(output.shape, model.num_classes, model.input_size, model=model.path.name)


#: How a model's one output is checked at `open`, by task: a new task adds its shape check here.
OUTPUT_CHECKS = {Task.CLASSIFY: _check_logits, Task.DETECT: _check_boxes_scores, Task.SEGMENT: _check_class_scores}

#: First labels that name the background class (class 0 then draws no mask and counts no area).
BACKGROUND_LABELS = ("background", "__background__", "bg", "_background_")


def segmentation_for(output: str, labels: Sequence[str]) -> SegmentationSpec:
    """How an ONNX segmenter's [N, classes, h, w] scores decode: class 0 is background when its label says so."""
    background = 0 if labels and labels[0].strip().lower() in BACKGROUND_LABELS else None
    return SegmentationSpec(output=output, background_class=background)


def export_onnx_model(
    model: OnnxModel,
    output: str | os.PathLike[str],
    *,
    format: Format | str = Format.ONNX,
    precision: Precision | str = Precision.FP32,
    parity: ParityConfig = DEFAULT_PARITY,
    overwrite: bool = False,
) -> Bundle:
    """An FP32/FP16 ONNX or OpenVINO bundle of `model`, parity-checked against the original file.

    INT8 needs calibration images: use `edgevision.compress.quantize.quantize(model, ...)`;
    an accuracy guard on top: `edgevision.compress.quantize.build_float_bundle`.
    """
    fmt = parse_one_enum(Format, format, option="format")
    prec = parse_one_enum(Precision, precision, option="precision")
    return build_onnx_float_bundle(model, output, format=fmt, precision=prec, checks=BundleChecks(parity=parity),
                                   overwrite=overwrite)


def build_onnx_float_bundle(
    model: OnnxModel, output: str | os.PathLike[str], *, format: Format, precision: Precision,
    checks: BundleChecks, overwrite: bool,
) -> Bundle:
    """`float_artifact` + `finish_bundle` in a temp dir: the whole float path for an ONNX model."""
    if precision is Precision.INT8:
        raise ConfigError("INT8 needs calibration images: use edgevision.compress.quantize.quantize.")
    open_parity_data(checks.parity, task=model.task, labels=model.labels)
    with atomic_directory(output, overwrite=overwrite) as workdir:
        artifact = float_artifact(model, workdir, format=format, precision=precision)
        finish_bundle(workdir, model, artifact, format=format, file_precision=precision, notes=_float_notes(model, precision),
                      checks=checks)
    return Bundle.load(output)


def _float_notes(model: OnnxModel, precision: Precision) -> dict[str, str]:
    notes = dict(model.notes)
    if precision is Precision.FP16:
        notes["quantize"] = "FP16 weights (float32 inputs and outputs)"
    return notes


def float_artifact(model: OnnxModel, directory: Path, *, format: Format, precision: Precision) -> ExportArtifact:
    """Write `model` as FP32/FP16 ONNX or FP32/FP16/BF16 OpenVINO into `directory` (the bundle's temp dir)."""
    if precision is Precision.INT8:
        raise ConfigError("float_artifact writes fp32, fp16 or bf16, not int8; INT8 goes through quantize.")
    if precision is Precision.BF16 and format is not Format.OPENVINO:
        raise ConfigError("bf16 bundles are OpenVINO bundles: use --format openvino with --precision bf16.")
    if format is Format.ONNX:
        model.write_fp32(directory / MODEL_FILE)
        versions: dict[str, str] = {}
        if precision is Precision.FP16:
            from ..export.onnx import convert_onnx_to_fp16

            convert_onnx_to_fp16(directory / MODEL_FILE)
            versions["onnxruntime"] = package_version("onnxruntime")
        return model.artifact(versions=versions)
    if format is Format.OPENVINO:
        import tempfile

        from ..export.openvino import convert_onnx_to_openvino

        if model.layout is not Layout.NCHW:
            raise ConfigError(f"{model.path} takes NHWC input; edgevision's OpenVINO bundles take NCHW. Use format onnx.")
        with tempfile.TemporaryDirectory(prefix="edgevision-onnx-") as scratch:
            single = Path(scratch) / MODEL_FILE
            model.write_fp32(single)
            return convert_onnx_to_openvino(single, directory, precision=precision)
    raise CompressionError(
        f"An ONNX model cannot become a {format.value} bundle here: TFLite conversion needs the torch model "
        "(litert-torch), and ONNX → TFLite converters need TensorFlow. Use format onnx or openvino."
    )


def _load(path: Path) -> Any:
    onnx = require("onnx", extra="onnx", what="onnx")
    if not path.is_file():
        raise ModelFileError(f"ONNX file {path} does not exist. Pass the .onnx file your framework exported.")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a readable ONNX model ({_first_line(exc)}). Re-export it.") from exc


def _single_input(graph_model: Any, path: Path) -> Any:
    graph = graph_model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ConfigError(
            f"{path} has {len(inputs)} inputs and {len(graph.output)} outputs; edgevision takes image models "
            "with one image input and one output (a classifier's logits, a detector's raw boxes + scores, or a "
            "segmenter's per-pixel class scores; instance-mask models such as YOLO-seg are not supported)."
        )
    return inputs[0]


def _fixed(dim: Any) -> bool:
    return dim.HasField("dim_value") and dim.dim_value > 0


def _input_geometry(value_info: Any, path: Path) -> InputGeometry:
    """Layout, dynamic batch? and (height, width) of a 4-D image input, or a ConfigError saying what is wrong.

    A dimension is dynamic when it is symbolic (dim_param), unset, 0 or negative (-1 is common).
    """
    tensor_type = value_info.type.tensor_type
    if tensor_type.elem_type != 1:  # onnx.TensorProto.FLOAT
        raise ConfigError(f"{path}'s input {value_info.name!r} is not float32; edgevision feeds float32 images.")
    dims = [d.dim_value if _fixed(d) else None for d in tensor_type.shape.dim]
    if len(dims) != 4:
        raise ConfigError(f"{path}'s input {value_info.name!r} has {len(dims)} dimensions; expected a 4-D image batch.")
    shown = [d if d is not None else "?" for d in dims]
    batch = dims[0]
    if batch not in (None, 1):
        raise ConfigError(f"{path} has a fixed batch of {batch}; re-export it with batch 1 or a dynamic batch axis.")
    if dims[1] == 3:
        layout, height, width = Layout.NCHW, dims[2], dims[3]
    elif dims[3] == 3:
        layout, height, width = Layout.NHWC, dims[1], dims[2]
    else:
        raise ConfigError(f"{path}'s input shape {shown} has no channel axis of 3; edgevision takes colour images.")
    size = (height, width) if height and width else None
    return InputGeometry(layout=layout, dynamic_batch=batch is None, size=size)


def _yolo_metadata(graph_model: Any) -> YoloMetadata:
    props = {p.key: p.value for p in graph_model.metadata_props}
    task = props.get("task", "").strip().lower() or None
    return YoloMetadata(task=task, imgsz=_parse_imgsz(props.get("imgsz")), stride=_parse_stride(props.get("stride")))


def _parse_imgsz(text: str | None) -> tuple[int, int] | None:
    """'[640, 640]' or '640' (Ultralytics writes a list) → (height, width); None when absent or unreadable."""
    if not text:
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return None
    values = [value] if isinstance(value, int) else list(value) if isinstance(value, list | tuple) else []
    if len(values) in (1, 2) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        return int(values[0]), int(values[-1])
    return None


def _parse_stride(text: str | None) -> int | None:
    try:
        stride = int(float(text)) if text else None  # Ultralytics writes "32"
    except ValueError:
        return None
    return stride if stride and stride > 0 else None


def _resolve_task(path: Path, task: Task | str | None, metadata_task: str | None) -> Task:
    known = {t.value for t in Task}
    if metadata_task is not None and metadata_task not in known:
        raise ConfigError(
            f"{path.name}'s metadata says task {metadata_task!r}; edgevision takes {', '.join(sorted(known))} "
            "models from ONNX. Export a classify, detect or segment model."
        )
    if task is None:
        if metadata_task == Task.SEGMENT.value:  # Ultralytics writes it for YOLO-seg, an instance-mask model
            raise ConfigError(
                f"{path.name}'s metadata says task 'segment', as Ultralytics writes for instance segmentation (YOLO-seg: "
                "boxes plus mask coefficients), which edgevision does not take. A semantic segmenter (one output of "
                "per-pixel class scores [N, classes, h, w]) opens with --task segment (task=Task.SEGMENT)."
            )
        return Task(metadata_task) if metadata_task else Task.CLASSIFY
    chosen = parse_one_enum(Task, task, option="task")
    if metadata_task is not None and chosen.value != metadata_task:
        raise ConfigError(
            f"--task {chosen.value} (task={chosen.value!r}) disagrees with {path.name}'s metadata, which says task "
            f"{metadata_task!r} (written by its exporter). Pass --task {metadata_task}, or drop --task."
        )
    return chosen


def _default_preprocess(path: Path, task: Task, geometry: InputGeometry, meta: YoloMetadata) -> PreprocessSpec:
    """A detector's Ultralytics letterbox at the graph's size (or metadata imgsz); other tasks have no default."""
    if task is Task.SEGMENT:
        raise ConfigError(f"Opening {path.name} as a segmenter needs preprocess=PreprocessSpec(size=..., "
                          "resize=ResizePolicy.LETTERBOX, mean=..., std=...): the file does not say how it was trained.")
    if task is not Task.DETECT:
        raise ConfigError(f"Opening {path.name} as a classifier needs preprocess=PreprocessSpec(size=..., mean=..., "
                          "std=...): the file does not say how it was trained.")
    size = geometry.size or meta.imgsz
    if size is None:
        raise ConfigError(f"{path.name}'s input height/width are dynamic and its metadata has no 'imgsz': give the "
                          "size it was trained at (--size HxW, or preprocess=PreprocessSpec(size=...)).")
    return stride_aligned_preprocess(path, size, meta.stride or DEFAULT_STRIDE)


def stride_aligned_preprocess(path: Path, size: tuple[int, int], stride: int) -> PreprocessSpec:
    """`ultralytics_preprocess`, or one ConfigError when `size` is not a multiple of the model's stride."""
    if any(side % stride for side in size):
        raise ConfigError(f"{path.name}: input size {size[0]}x{size[1]} (HxW) is not a multiple of the model's stride "
                          f"{stride} (metadata 'stride'); the letterbox pads to multiples of it. Use a size that is.")
    return ultralytics_preprocess(size, stride=stride)


def _candidate_strides(size: tuple[int, int], candidates: int, largest: int) -> tuple[int, ...]:
    """The strides 8, 16, … up to `largest` when they account for every candidate (YOLO's P3..); else ()."""
    strides: list[int] = []
    stride = 8
    while stride <= largest:
        strides.append(stride)
        stride *= 2
    height, width = size
    counted = sum(-(-height // s) * -(-width // s) for s in strides)
    return tuple(strides) if strides and counted == candidates else ()


def _labels_from_metadata(graph_model: Any) -> tuple[list[str], str] | None:
    """Class names from metadata_props: a JSON/Python list, or a dict of index → name (Ultralytics)."""
    props = {p.key: p.value for p in graph_model.metadata_props}
    for key in LABEL_METADATA_KEYS:
        if key not in props:
            continue
        try:
            value = json.loads(props[key])
        except ValueError:
            try:
                value = ast.literal_eval(props[key])
            except (ValueError, SyntaxError):
                continue
        if isinstance(value, dict):
            try:
                indexed = {int(k): str(v) for k, v in value.items()}
            except (TypeError, ValueError):
                continue
            if sorted(indexed) != list(range(len(indexed))):
                continue
            value = [indexed[i] for i in range(len(indexed))]
        if isinstance(value, list | tuple) and value and all(isinstance(v, str | int) for v in value):
            return [str(v) for v in value], key
    return None


def _choose_labels(
    given: Sequence[str] | None, found: tuple[list[str], str] | None, path: Path
) -> tuple[list[str], str]:
    """(labels, where they came from): the metadata's, the caller's, or an error when both exist and differ."""
    if given is not None:
        given = [str(label) for label in given]
    if found is not None:
        meta, key = found
        if given and given != meta:
            what = "is in a different order than" if sorted(given) == sorted(meta) else "differs from"
            raise ConfigError(
                f"The label list you gave {_shown(given)} {what} the labels in {path.name}'s metadata "
                f"({key!r}: {_shown(meta)}); a wrong order scores as a wrong model. Drop the list to use the model's, "
                "or fix it."
            )
        return meta, f"from the model's metadata ({key!r})"
    if not given:
        raise ConfigError(
            f"labels are required for {path.name}: its metadata carries none (looked for "
            f"{', '.join(LABEL_METADATA_KEYS)}). Give one name per class output, in output order."
        )
    return given, "given by the caller"


def _shown(labels: Sequence[str], limit: int = 12) -> str:
    head = ", ".join(labels[:limit])
    return f"[{head}{', …' if len(labels) > limit else ''}] ({len(labels)})"


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


__all__ = [
    "DEFAULT_STRIDE", "OUTPUT_CHECKS", "InputGeometry", "OnnxModel", "YoloMetadata", "build_onnx_float_bundle",
    "export_onnx_model", "float_artifact", "metadata_labels", "read_geometry", "read_yolo_metadata", "resolve_task",
    "segmentation_for", "stride_aligned_preprocess", "ultralytics_detection", "ultralytics_preprocess",
]
