"""OpenVINO backend: runs IR bundles (FP32, FP16 and NNCF-quantised INT8) on CPU, GPU or NPU.

OpenVINO may compute in a lower precision than the file holds: on CPUs with AMX/AVX512-BF16
its default is bf16, and an f16 request can become bf16. So this backend asks for f32 unless
told otherwise, and `engine_precision` reports what the compiled model actually uses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .._compat.enum import StrEnum
from .._optional import require
from ..errors import ConfigError, RuntimeEngineError, did_you_mean
from ..types import Format, Precision
from .base import Runtime, RuntimeOptions

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
        self._compiled = core.compile_model(model, self.options.device, self._config())
        self._request = self._compiled.create_infer_request()

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
        """The precision hint sent to OpenVINO (None: the device's own default)."""
        if self.options.precision_hint is not None:
            return self.options.precision_hint  # type: ignore[return-value]
        on_cpu = self.options.device.upper().startswith("CPU")
        if self.bundle.manifest.precision is Precision.FP32 or on_cpu:
            return InferencePrecision.F32
        return None

    @property
    def engine_precision(self) -> str:
        """What the compiled model computes in: "f32", "bf16", "f16"; "int8+f32" for quantised bundles."""
        try:
            computed = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception:  # noqa: BLE001 - some devices (AUTO, NPU) do not report it
            requested = self.requested_precision
            computed = requested.value if requested is not None else "device default"
        if self.bundle.manifest.precision is Precision.INT8:
            return f"int8+{computed}"
        return computed

    def _run(self, batch: np.ndarray) -> np.ndarray:
        results = self._request.infer({0: batch}, share_inputs=True, share_outputs=False)
        return results[0]

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
