""""ONNX in": a classifier exported to ONNX by any framework, brought into edgevision.

An ONNX file says nothing about labels or preprocessing, so the caller gives them; the input
name, shape, layout (NCHW, or NHWC as TensorFlow exports) and batch come from the graph. From
there it goes where a torch model goes after compression: FP32/FP16 ONNX or OpenVINO bundles
(`export_onnx_model`), INT8 (`edgevision.compress.quantize.quantize`), and `edgevision.bench`.
Parity is checked against the original file through ONNX Runtime. Pruning and distillation
need the torch model's layers and weights: asking them of an ONNX model is a CompressionError.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..bundle import Bundle, PreprocessSpec, sha256_file
from ..errors import CompressionError, ConfigError, ModelFileError
from ..export.base import ExportArtifact, package_version
from ..export.parity import ParityConfig
from ..types import Format, Layout, Precision

MODEL_FILE = "model.onnx"
#: protobuf's limit for one ONNX file; larger models need external data, which bundles do not carry yet.
MAX_SINGLE_FILE_BYTES = 2**31 - 1


@dataclass(kw_only=True)
class OnnxModel:
    """An ONNX classifier plus what the graph cannot say. Build it with `OnnxModel.open`."""

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
    _session: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        labels: Sequence[str],
        preprocess: PreprocessSpec,
        name: str | None = None,
    ) -> OnnxModel:
        """Read `path`, infer its input from the graph, and check one run gives len(labels) logits."""
        onnx = require("onnx", extra="onnx", what="onnx")
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"ONNX file {path} does not exist. Pass the .onnx file your framework exported.")
        labels = [str(label) for label in labels]
        if not labels:
            raise ConfigError("labels are required for an ONNX model: one name per class output, in output order.")
        try:
            graph_model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise ModelFileError(f"{path} is not a readable ONNX model ({_first_line(exc)}). Re-export it.") from exc
        graph = graph_model.graph
        initializers = {t.name for t in graph.initializer}
        inputs = [i for i in graph.input if i.name not in initializers]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ConfigError(
                f"{path} has {len(inputs)} inputs and {len(graph.output)} outputs; edgevision takes image classifiers "
                "with one image input and one logits output."
            )
        layout, dynamic_batch, size = _input_geometry(inputs[0], path)
        if tuple(preprocess.size) != size:
            raise ConfigError(
                f"preprocess size {tuple(preprocess.size)} differs from the model input {size} (height, width) in {path}; "
                f"pass PreprocessSpec(size={size}, ...)."
            )
        producer = " ".join(p for p in (graph_model.producer_name, graph_model.producer_version) if p)
        model = cls(
            path=path, labels=labels, preprocess=preprocess, input_name=inputs[0].name, output_name=graph.output[0].name,
            layout=layout, dynamic_batch=dynamic_batch, name=name or path.stem, producer=producer or "unknown",
            notes={"source": f"ONNX file {path.name} made by {producer or 'an unknown producer'}"},
        )
        model._check_output()
        return model

    # -- what TrainedModel offers, so bundle writing and the guard treat both alike ------------
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.preprocess.size)  # type: ignore[return-value]

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
    def logits(self, batch: np.ndarray) -> np.ndarray:
        """The original file's logits (ONNX Runtime, FP32) for an NCHW float32 batch."""
        session = self._ort_session()
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.layout is Layout.NHWC:
            batch = np.ascontiguousarray(batch.transpose(0, 2, 3, 1))
        if self.dynamic_batch:
            return session.run([self.output_name], {self.input_name: batch})[0]
        return np.concatenate([session.run([self.output_name], {self.input_name: batch[i : i + 1]})[0] for i in range(len(batch))])

    def write_fp32(self, path: Path) -> None:
        """The original graph as one self-contained file (external weights folded in)."""
        onnx = require("onnx", extra="onnx", what="onnx")
        proto = onnx.load(str(self.path))
        if proto.ByteSize() > MAX_SINGLE_FILE_BYTES:
            raise ModelFileError(f"{self.path} is over 2 GB; edgevision bundles hold single-file ONNX models up to 2 GB.")
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
            except Exception as exc:  # noqa: BLE001
                raise ModelFileError(f"ONNX Runtime cannot load {self.path}: {_first_line(exc)}") from exc
        return self._session

    def _check_output(self) -> None:
        height, width = self.input_size
        logits = self.logits(np.zeros((1, 3, height, width), dtype=np.float32))
        if logits.ndim != 2 or logits.shape != (1, self.num_classes):
            raise ConfigError(
                f"{self.path} outputs shape {logits.shape} for one image; expected (1, {self.num_classes}) logits, "
                f"one per label ({self.num_classes} labels given)."
            )


def export_onnx_model(
    model: OnnxModel,
    output: str | os.PathLike[str],
    *,
    format: Format | str = Format.ONNX,  # noqa: A002 - the user's word for it
    precision: Precision | str = Precision.FP32,
    parity: ParityConfig = ParityConfig(),
    overwrite: bool = False,
) -> Bundle:
    """An FP32/FP16 ONNX or OpenVINO bundle of `model`, parity-checked against the original file.

    INT8 needs calibration images: use `edgevision.compress.quantize.quantize(model, ...)`.
    """
    from .quantize import build_float_bundle

    return build_float_bundle(model, output, format=format, precision=precision, parity=parity, overwrite=overwrite)


def float_artifact(model: OnnxModel, directory: Path, *, format: Format, precision: Precision) -> ExportArtifact:  # noqa: A002
    """Write `model` as FP32/FP16 ONNX or OpenVINO into `directory` (the bundle's temp dir)."""
    if precision not in (Precision.FP32, Precision.FP16):
        raise ConfigError(f"float_artifact writes fp32 or fp16, not {precision.value}; INT8 goes through quantize.")
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


def _input_geometry(value_info: Any, path: Path) -> tuple[Layout, bool, tuple[int, int]]:
    """(layout, dynamic batch?, (height, width)) of a 4-D image input, or a ConfigError saying what is wrong."""
    tensor_type = value_info.type.tensor_type
    if tensor_type.elem_type != 1:  # onnx.TensorProto.FLOAT
        raise ConfigError(f"{path}'s input {value_info.name!r} is not float32; edgevision feeds float32 images.")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
    if len(dims) != 4:
        raise ConfigError(f"{path}'s input {value_info.name!r} has {len(dims)} dimensions; expected a 4-D image batch.")
    batch = dims[0]
    if batch not in (None, 0, 1):
        raise ConfigError(f"{path} has a fixed batch of {batch}; re-export it with batch 1 or a dynamic batch axis.")
    if dims[1] == 3:
        layout, height, width = Layout.NCHW, dims[2], dims[3]
    elif dims[3] == 3:
        layout, height, width = Layout.NHWC, dims[1], dims[2]
    else:
        raise ConfigError(f"{path}'s input shape {dims} has no channel axis of 3; edgevision takes colour images.")
    if not height or not width:
        raise ConfigError(f"{path}'s input height/width are dynamic ({dims}); re-export with a fixed image size.")
    return layout, batch in (None, 0), (height, width)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


__all__ = ["OnnxModel", "export_onnx_model", "float_artifact"]
