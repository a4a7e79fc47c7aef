"""OpenVINO backend: runs IR bundles (FP32, FP16, BF16 and NNCF-quantised INT8) on CPU, GPU or NPU.

OpenVINO may compute in a lower precision than the file holds: on CPUs with AMX/AVX512-BF16
its default is bf16, and an f16 request can become bf16. So FP32 and FP16 bundles are compiled
with an f32 precision hint (their parity was checked in f32), BF16 bundles with bf16, and INT8
bundles with the device's own default: their convolutions run in u8/i8 whatever the hint, and
forcing f32 on the float remainder made a ResNet-18 INT8 bundle slower here (see `requested_precision`).
`engine_precision` reads what each compute layer of the compiled model really runs in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._compat.enum import StrEnum
from .._optional import require
from ..errors import ConfigError, ModelFileError, RuntimeEngineError, did_you_mean
from ..types import Format, Precision
from .base import Runtime, RuntimeOptions
from .precision import EnginePrecision, count, normalise

#: Device names OpenVINO composes from others; they never appear in `available_devices`.
VIRTUAL_DEVICES = frozenset({"AUTO", "HETERO", "MULTI", "BATCH"})


class PerformanceHint(StrEnum):
    LATENCY = "LATENCY"  # one request at a time, as fast as possible (cameras, single images)
    THROUGHPUT = "THROUGHPUT"  # parallel streams for many requests in flight


class InferencePrecision(StrEnum):
    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"


@dataclass(frozen=True, kw_only=True)
class OpenVINOOptions(RuntimeOptions):
    """`precision_hint` None: f32 for FP32 bundles, and on CPU for every bundle; else the device's default."""

    performance_hint: PerformanceHint | str = PerformanceHint.LATENCY
    precision_hint: InferencePrecision | str | None = None
    device: str = "CPU"
    # Requests the compiled model runs at once, `threads` split between them (None: the hint's
    # choice). Forks (Runtime.fork) share the model, so give them a stream each.
    streams: int | None = None
    # Compile for this one batch size (OpenVINO `reshape`): a static-shape model, for callers that
    # always send the same batch. Smaller batches are padded, larger ones split. None: the bundle's shape.
    static_batch: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        performance = _choice(PerformanceHint, self.performance_hint, "performance_hint")
        object.__setattr__(self, "performance_hint", performance)
        if self.precision_hint is not None:
            precision = _choice(InferencePrecision, self.precision_hint, "precision_hint")
            object.__setattr__(self, "precision_hint", precision)
        if not self.device.strip():
            raise ConfigError("device must name an OpenVINO device such as 'CPU', 'GPU' or 'AUTO'.")
        if self.streams is not None and self.streams < 1:
            raise ConfigError(f"streams must be 1 or more, got {self.streams}.")
        if self.static_batch is not None and self.static_batch < 1:
            raise ConfigError(f"static_batch must be 1 or more, got {self.static_batch}.")


class OpenVINORuntime(Runtime):
    name = "openvino"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.OPENVINO})
    options_type = OpenVINOOptions
    options: OpenVINOOptions

    def _load(self) -> None:
        ov = require("openvino", extra="openvino", what="OpenVINO")
        core = ov.Core()
        _check_device(self.options.device, core.available_devices)
        files = self.bundle.manifest.model_files
        weights = str(self.bundle.path / files[1]) if len(files) > 1 else ""
        model = core.read_model(str(self.bundle.model_path), weights)
        if self.bundle.manifest.precision is Precision.BF16 or self.options.precision_hint is InferencePrecision.BF16:
            check_bf16(cpu_capabilities(core), self.options.device)
        self._static_batch = self._choose_static_batch()
        if self._static_batch is not None and self.input_spec.dynamic_batch:
            model.reshape([self._static_batch, *self.input_spec.shape[1:]])
        self._compiled = core.compile_model(model, self.options.device, self._config())
        self._request = self._compiled.create_infer_request()

    def _choose_static_batch(self) -> int | None:
        if not self.input_spec.dynamic_batch:
            if self.options.static_batch not in (None, self.input_spec.shape[0]):
                raise ConfigError(
                    f"static_batch={self.options.static_batch} conflicts with this bundle's fixed batch of "
                    f"{self.input_spec.shape[0]}; leave static_batch unset or re-export with a dynamic batch."
                )
            return self.input_spec.shape[0]
        return self.options.static_batch

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.options.performance_hint.value}
        if self.options.threads:
            config["INFERENCE_NUM_THREADS"] = self.options.threads
        if self.options.streams:
            config["NUM_STREAMS"] = self.options.streams
        hint = self.requested_precision
        if hint is not None:
            config["INFERENCE_PRECISION_HINT"] = hint.value
        return config

    @property
    def requested_precision(self) -> InferencePrecision | None:
        """The precision hint sent to OpenVINO (None: the device's own default).

        FP32 bundles, and FP16 ones on CPU, get f32: that is what their parity was checked in. BF16
        bundles get bf16. INT8 bundles get the device default: their int8 layers ignore the hint, and
        forcing f32 on the rest cost a ResNet-18 INT8 bundle time here while its parity holds either way.
        """
        if self.options.precision_hint is not None:
            return self.options.precision_hint  # type: ignore[return-value]
        precision = self.bundle.manifest.precision
        if precision is Precision.INT8:
            return None
        if precision is Precision.BF16:
            return InferencePrecision.BF16
        on_cpu = self.options.device.upper().startswith("CPU")
        if precision is Precision.FP32 or on_cpu:
            return InferencePrecision.F32
        return None

    @property
    def fixed_batch(self) -> int | None:
        return self._static_batch

    def _read_precision(self) -> EnginePrecision:
        """Count compute layers of the compiled (runtime) model by the precision each one runs in."""
        try:
            runtime_model = self._compiled.get_runtime_model()
        except Exception as exc:  # noqa: BLE001 - some devices (AUTO, NPU plugins) have no runtime model
            return EnginePrecision.unknown(f"OpenVINO {self.options.device} gives no runtime model ({type(exc).__name__})")
        return runtime_model_precision(runtime_model)

    @property
    def engine_config(self) -> dict[str, str | int | bool | None]:
        """The compiled model's own record of its settings (what OpenVINO chose, not only what was asked)."""
        compiled = self._compiled
        inference = _property(compiled, "INFERENCE_PRECISION_HINT")
        return {
            "device": self.options.device,
            "performance_hint": str(_property(compiled, "PERFORMANCE_HINT") or self.options.performance_hint.value),
            "threads": self.options.threads,
            "engine_threads": _int_or_none(_property(compiled, "INFERENCE_NUM_THREADS")),
            "precision_hint": None if self.requested_precision is None else self.requested_precision.value,
            "inference_precision": None if inference is None else normalise(inference.get_type_name()),
            "streams": _int_or_none(_property(compiled, "NUM_STREAMS")),
            "static_shape": compiled.inputs[0].get_partial_shape().is_static,
            "spinning": None,  # OpenVINO's CPU threads do not busy-wait between requests
        }

    def _run(self, batch: np.ndarray) -> list[np.ndarray]:
        size = self._static_batch
        count = len(batch)
        if size is not None and count < size:  # a static model takes exactly its batch: pad, then drop
            padded = np.zeros((size, *batch.shape[1:]), dtype=batch.dtype)
            padded[:count] = batch
            batch = padded
        results = self._request.infer({0: batch}, share_inputs=True, share_outputs=False)
        return [results[index][:count] for index in self._output_indices()]

    def _output_indices(self) -> list[int]:
        """Positions of the manifest's outputs among the compiled model's (by tensor name, else in order)."""
        indices = getattr(self, "_indices", None)
        if indices is None:
            outputs = self._compiled.outputs
            names = [set(output.get_names()) for output in outputs]
            indices = []
            for position, wanted in enumerate(self.output_names):
                found = [i for i, known in enumerate(names) if wanted in known]
                indices.append(found[0] if found else position)
            if len(outputs) < len(indices):
                raise ModelFileError(
                    f"{self.bundle.model_path} has {len(outputs)} outputs but the manifest describes {len(indices)}; "
                    "re-export the bundle."
                )
            self._indices = indices
        return indices

    def fork(self) -> OpenVINORuntime:
        """A handle with its own infer request on the same compiled model (weights are not loaded twice)."""
        if self._compiled is None:
            raise RuntimeEngineError("This OpenVINO runtime is closed; open the bundle again to fork it.")
        twin = copy.copy(self)
        twin._request = self._compiled.create_infer_request()
        return twin

    def close(self) -> None:
        self._request = None
        self._compiled = None


#: Runtime-model layer types that do a model's arithmetic (everything else moves or reshapes data).
COMPUTE_LAYERS = frozenset({
    "Convolution", "GroupConvolution", "Deconvolution", "BinaryConvolution", "FullyConnected", "MatMul", "Gemm",
})


def runtime_model_precision(runtime_model: Any) -> EnginePrecision:
    """Compute layers per precision from a compiled model's runtime (execution) graph.

    Each node's rt_info names its "layerType"; a compute layer's precision is the element type of its
    activation input (u8/i8 for quantised convolutions, f32/bf16/f16 for float ones). Its
    "runtimePrecision" is not used: with FP16-compressed weights it says f16 for convolutions that
    take and give f32 (checked on OpenVINO 2026.4, f32 hint).
    """
    precisions, narrow_weights = [], 0
    for op in runtime_model.get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in COMPUTE_LAYERS:
            continue
        activations = normalise(op.input(0).get_element_type().get_type_name())
        precisions.append(activations)
        if op.get_input_size() > 1 and activations in ("fp32", "bf16"):
            weights = normalise(op.input(1).get_element_type().get_type_name())
            narrow_weights += weights in ("fp16", "int8") and weights != activations
    if not any(precisions):
        return EnginePrecision.unknown("OpenVINO's runtime model names no compute layers with a known input type")
    note = f"{narrow_weights} layers keep compressed (fp16/int8) weights, computed in float" if narrow_weights else ""
    return EnginePrecision(count(precisions), source="OpenVINO runtime model (layer input types)", note=note)


def cpu_capabilities(core: Any) -> tuple[str, ...]:
    """OpenVINO's CPU plugin's OPTIMIZATION_CAPABILITIES here ("FP32", "BF16", "INT8", ...); () without a CPU plugin."""
    try:
        return tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # noqa: BLE001 - no CPU plugin
        return ()


def cpu_has_bf16(core: Any) -> bool:
    """Whether OpenVINO's CPU plugin can compute in bf16 here (AVX512-BF16 or AMX)."""
    return "BF16" in cpu_capabilities(core)


def check_bf16(capabilities: tuple[str, ...], device: str) -> None:
    """Refuse bf16 on a CPU that lacks it: OpenVINO would silently run f32 and the label would lie."""
    if device.upper().startswith("CPU") and "BF16" not in capabilities:
        raise ConfigError(
            "bf16 needs a CPU with the avx512_bf16 or amx_bf16 flag (see /proc/cpuinfo); this one has neither "
            f"(OpenVINO reports {', '.join(capabilities) or 'no CPU capabilities'}). Use an fp16 or fp32 bundle here, "
            "or run the bf16 bundle on a CPU that has it."
        )


def _property(compiled: Any, name: str) -> Any:
    try:
        return compiled.get_property(name)
    except Exception:  # noqa: BLE001 - devices differ in the properties they report
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _choice(enum: type[StrEnum], value: object, option: str) -> Any:
    if isinstance(value, enum):
        return value
    text = str(value)
    for member in enum:
        if text.lower() == member.value.lower():
            return member
    valid = [m.value for m in enum]
    raise ConfigError(
        f"Unknown OpenVINO {option} {text!r}. Choose from: {', '.join(valid)}.{did_you_mean(text, valid)}"
    )


def _check_device(device: str, available: list[str]) -> None:
    """Reject a device this machine lacks here, not as a 'corrupt file' from deep in the plugin."""
    root = device.split(":")[0].split(".")[0].upper()
    if root in VIRTUAL_DEVICES or device in available or root in {d.split(".")[0] for d in available}:
        return
    names = ", ".join(available) or "none"
    raise ConfigError(
        f"OpenVINO device {device!r} is not available here (found: {names}).{did_you_mean(device, available)}"
    )
