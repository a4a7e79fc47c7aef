"""TFLite (LiteRT) backend: runs ``.tflite`` bundles (FP32, FP16 weights, full-integer INT8) on CPU.

The interpreter comes from ``ai_edge_litert`` (the `tflite` extra); a device that only has the
older ``tflite_runtime`` wheel works too, since both expose the same ``Interpreter`` API. No
torch is imported here.

XNNPACK: LiteRT applies its XNNPACK CPU delegate by default (op resolver ``AUTO``/``BUILTIN``);
``TFLiteOptions(xnnpack=False)`` builds the interpreter with
``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``, i.e. the plain built-in kernels, which is
slower but useful to rule the delegate out when results look wrong. When XNNPACK refuses a graph at prepare
time (it happens to some INT8 graphs), the interpreter falls back to the built-in kernels with an
`XnnpackFallbackWarning`, and ``engine_config["xnnpack_refused"]`` says why. `threads` is passed as the
interpreter's ``num_threads`` (used by XNNPACK and the built-in kernels alike).

INT8 models with int8/uint8 input or output tensors are fed and read in float32 like every
other bundle: inputs are quantised and outputs dequantised with the tensors' scale/zero point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from .._optional import require
from .._quiet import native_stderr_captured
from ..errors import EngineNotInstalledError, ModelFileError
from ..types import Format
from .base import Runtime, RuntimeOptions
from .precision import EnginePrecision, count, normalise

INSTALL_HINT = "pip install 'edgevision[tflite]'"
#: TFLite builtin operators that do a model's arithmetic.
COMPUTE_OPS = frozenset({
    "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL",
})


class XnnpackFallbackWarning(RuntimeWarning):
    """XNNPACK could not prepare the graph; the interpreter runs on LiteRT's built-in kernels instead."""


@dataclass(frozen=True, kw_only=True)
class TFLiteOptions(RuntimeOptions):
    """`xnnpack`: apply LiteRT's default XNNPACK CPU delegate (True) or use the built-in kernels only."""

    xnnpack: bool = True


def import_interpreter() -> ModuleType:
    """The interpreter module: ``ai_edge_litert.interpreter``, else ``tflite_runtime.interpreter``."""
    try:
        return require("ai_edge_litert.interpreter", extra="tflite", what="LiteRT (ai-edge-litert)")
    except EngineNotInstalledError:
        pass
    try:
        return require("tflite_runtime.interpreter", extra="tflite", what="tflite-runtime")
    except EngineNotInstalledError:
        raise EngineNotInstalledError(
            f"No TFLite interpreter is installed (neither ai-edge-litert nor tflite-runtime): {INSTALL_HINT}"
        ) from None


class TFLiteRuntime(Runtime):
    name = "tflite"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.TFLITE})
    options_type = TFLiteOptions
    options: TFLiteOptions

    def _load(self) -> None:
        self.xnnpack_refused: str | None = None
        try:
            self._interpreter = self._build(xnnpack=self.options.xnnpack)
        except RuntimeError as failure:
            if not self.options.xnnpack or "XNNPACK" not in str(failure):
                raise
            # XNNPACK refuses some INT8 graphs at prepare time (e.g. a requantisation scale outside the range its
            # kernels take); the built-in kernels run them, slower. Said once, and recorded in engine_config.
            self.xnnpack_refused = " ".join(str(failure).split())[:300]
            warnings.warn(
                f"LiteRT's XNNPACK delegate refused {self.bundle.model_path} ({self.xnnpack_refused}); running it on "
                "the built-in kernels, which are slower. Re-quantising with more calibration images, or with "
                "scheme='w8a16', may give a graph XNNPACK accepts.", XnnpackFallbackWarning, stacklevel=2)
            self._interpreter = self._build(xnnpack=False)
        self._input: dict[str, Any] = self._interpreter.get_input_details()[0]
        self._outputs_details: list[dict[str, Any]] = self._interpreter.get_output_details()
        if len(self._outputs_details) != len(self.output_names):
            raise ModelFileError(
                f"{self.bundle.model_path} has {len(self._outputs_details)} outputs but the manifest describes "
                f"{len(self.output_names)}; re-export the bundle."
            )
        model_shape = tuple(int(d) for d in self._input["shape"])
        if model_shape != tuple(self.input_spec.shape):
            raise ModelFileError(
                f"{self.bundle.model_path} takes input {model_shape} but the manifest says "
                f"{tuple(self.input_spec.shape)} ({self.input_spec.layout.value}); re-export the bundle."
            )

    def _build(self, *, xnnpack: bool) -> Any:
        module = import_interpreter()
        resolver = module.OpResolverType
        with native_stderr_captured():  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate" banner
            interpreter = module.Interpreter(
                model_path=str(self.bundle.model_path),
                num_threads=self.options.threads,
                experimental_op_resolver_type=resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            interpreter.allocate_tensors()
        return interpreter

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self._interpreter.set_tensor(self._input["index"], _quantize(batch, self._input))
        self._interpreter.invoke()
        return [_dequantize(self._interpreter.get_tensor(out["index"]), out) for out in self._outputs_details]

    def _read_precision(self) -> EnginePrecision:
        """Compute ops of the interpreter's plan by their input tensors' types.

        A CONV_2D fed int8 tensors runs an int8 kernel (XNNPACK's too); FP16-weight files show
        DEQUANTIZE ops turning the weights into float32 for float32 kernels.
        """
        ops = self._interpreter._get_ops_details()  # private, but the only view of the execution plan
        dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in self._interpreter.get_tensor_details()}
        precisions, fp16_weights = [], 0
        for op in ops:
            inputs = [dtypes.get(int(i)) for i in op["inputs"][:2] if int(i) >= 0]
            if op["op_name"] == "DEQUANTIZE" and inputs and inputs[0] == "float16":
                fp16_weights += 1
            if op["op_name"] in COMPUTE_OPS:
                typed = [normalise(name) for name in inputs if name and normalise(name)]
                precisions.append(typed[0] if typed else None)
        layers = count(precisions)
        if not layers:
            return EnginePrecision.unknown("LiteRT's execution plan lists no convolution or matrix product")
        note = f"{fp16_weights} fp16 weight tensors dequantised to fp32" if fp16_weights and "fp16" not in layers else ""
        return EnginePrecision(layers, source="LiteRT interpreter ops and tensor types", note=note)

    @property
    def engine_config(self) -> dict[str, str | int | bool | None]:
        return {
            "threads": self.options.threads,
            "xnnpack": self.options.xnnpack,
            "xnnpack_applied": self.xnnpack_applied,
            "xnnpack_refused": self.xnnpack_refused,
            "precision_hint": None,
            "streams": None,
            "spinning": None,
            "static_shape": True,  # a .tflite file fixes its input shape
        }

    @property
    def xnnpack_applied(self) -> bool:
        """Whether the XNNPACK delegate took over part of the graph (it shows as DELEGATE nodes)."""
        ops = self._interpreter._get_ops_details()  # noqa: SLF001 - the only public-enough view of the plan
        return any(op["op_name"] == "DELEGATE" for op in ops)

    def close(self) -> None:
        self._interpreter = None


def _is_quantized(detail: dict[str, Any]) -> bool:
    return np.dtype(detail["dtype"]).kind in "iu" and detail["quantization"][0] != 0.0


def _quantize(batch: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """float32 → the tensor's integer type with its scale/zero point; floats pass through."""
    dtype = np.dtype(detail["dtype"])
    if not _is_quantized(detail):
        return batch.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    limits = np.iinfo(dtype)
    return np.clip(np.round(batch / scale) + zero_point, limits.min, limits.max).astype(dtype)


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    if not _is_quantized(detail):
        return np.array(values, dtype=np.float32)  # a copy: the interpreter reuses its buffer
    scale, zero_point = detail["quantization"]
    return (values.astype(np.float32) - zero_point) * np.float32(scale)
