"""ONNX Runtime backend (CPU execution provider; CUDA/TensorRT EPs where a device has them).

`engine_precision` is read from the graph ONNX Runtime actually executes after its optimisers ran
(written through ``SessionOptions.optimized_model_filepath``): an FP16 file on a CPU without fp16
kernels gets Cast nodes back to fp32 and fp32 convolutions, and a QDQ file runs in int8 only where
the optimiser fused DequantizeLinear→Conv into QLinearConv (or similar); with optimisations off it
runs fp32 convolutions on dequantised weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._optional import require
from ..errors import ModelFileError
from ..types import Format, Precision
from .base import Runtime, RuntimeOptions
from .precision import EnginePrecision


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
        self._session = self._new_session()
        self._input_name = self._session.get_inputs()[0].name
        graph_outputs = [o.name for o in self._session.get_outputs()]
        missing = [name for name in self.output_names if name not in graph_outputs]
        if missing:
            raise ModelFileError(
                f"{self.bundle.model_path} has no output {missing[0]!r} (it has {', '.join(graph_outputs)}); "
                "the manifest and the model file disagree: re-export the bundle."
            )

    def _new_session(self, *, optimized_model_filepath: str | None = None) -> Any:
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
        if optimized_model_filepath is not None:
            session_options.optimized_model_filepath = optimized_model_filepath
        return ort.InferenceSession(
            str(self.bundle.model_path), sess_options=session_options, providers=list(self.options.providers),
            disabled_optimizers=list(self._disabled_optimizers()),
        )

    def _disabled_optimizers(self) -> tuple[str, ...]:
        """ORT graph optimisers known to crash the process on some bundles, turned off for those bundles.

        NchwcTransformer dereferences a null operator on x86-64 when an FP16 graph has
        Transpose → Cast(fp16→fp32) → MatMul on a dynamic shape (onnxruntime issue #28392): a segfault while the
        session is created, measured here on ORT 1.32 with torchvision's ViT exported to FP16 (`vit_tiny`). It
        only re-blocks convolutions for AVX-512/AVX2, and an FP16 graph on a CPU runs its convolutions through
        casts anyway.
        """
        return ("NchwcTransformer",) if self.bundle.manifest.precision is Precision.FP16 else ()

    def _read_precision(self) -> EnginePrecision:
        """Load the bundle once more with the same options, keep the optimised graph ORT writes, and read it.

        A second session (only when asked, e.g. once per bench row) rather than writing the graph on
        every load: a stream's workers should not pay for a file they never read.
        """
        import tempfile

        from .onnx_graph import optimised_graph_precision

        if list(self._session.get_providers()) != ["CPUExecutionProvider"]:
            return EnginePrecision.unknown(
                f"ONNX Runtime runs parts of the graph on {self._session.get_providers()[0]}, whose kernels it does not list"
            )
        with tempfile.TemporaryDirectory(prefix="edgevision-ort-") as folder:
            path = f"{folder}/optimised.onnx"
            self._new_session(optimized_model_filepath=path)
            return optimised_graph_precision(path)

    @property
    def engine_config(self) -> dict[str, str | int | bool | None]:
        options = self._session.get_session_options() if self._session is not None else None
        try:
            spinning = options.get_session_config_entry("session.intra_op.allow_spinning") if options else None
        except Exception:  # noqa: BLE001 - older ORT raises for an entry never set
            spinning = None
        return {
            "providers": ",".join(self._session.get_providers()) if self._session is not None else None,
            "threads": self.options.threads,
            "engine_threads": options.intra_op_num_threads if options else None,
            "graph_optimization": self.options.graph_optimization,
            "precision_hint": None,  # ONNX Runtime has none: it computes in the graph's types or casts to fp32
            "streams": None,
            "spinning": spinning != "0" if spinning is not None else self.options.allow_spinning,
            "static_shape": not self.input_spec.dynamic_batch,
        }

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(list(self.output_names), {self._input_name: batch})

    def close(self) -> None:
        self._session = None
