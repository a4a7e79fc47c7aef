"""ONNX Runtime backend (CPU execution provider; CUDA/TensorRT EPs where a device has them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .._optional import require
from ..types import Format
from .base import Runtime, RuntimeOptions


@dataclass(frozen=True, kw_only=True)
class ONNXRuntimeOptions(RuntimeOptions):
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    graph_optimization: str = "all"  # "disable" | "basic" | "extended" | "all"
    # ONNX Runtime's idle worker threads spin for work (its default): the lowest latency for a small
    # model alone (MobileNetV3-Small 1.4 vs 2.1 ms here), but the spinning takes the cores from
    # whatever shares them. Streaming apps should turn it off: a 640×480 stream of an INT8
    # ResNet-18 ran 1.3× faster without it.
    allow_spinning: bool = True


class ONNXRuntime(Runtime):
    name = "onnxruntime"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    options_type = ONNXRuntimeOptions

    def _load(self) -> None:
        ort = require("onnxruntime", extra="onnx", what="ONNX Runtime")
        session_options = ort.SessionOptions()
        if self.options.threads:
            session_options.intra_op_num_threads = self.options.threads
            session_options.inter_op_num_threads = 1
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        session_options.graph_optimization_level = levels[self.options.graph_optimization]
        session_options.log_severity_level = 3
        if not self.options.allow_spinning:
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(self.bundle.model_path), sess_options=session_options, providers=list(self.options.providers)
        )
        self._input_name = self._session.get_inputs()[0].name
        self._output_name = self._session.get_outputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run([self._output_name], {self._input_name: batch})[0]

    def close(self) -> None:
        self._session = None
