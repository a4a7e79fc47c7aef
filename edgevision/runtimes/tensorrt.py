"""TensorRT backend for NVIDIA GPUs and Jetson boards: builds an engine from an ONNX bundle.

The engine is built once per device and cached beside the bundle (see `tensorrt_cache`): a key of
GPU, compute capability, TensorRT version, ONNX hash, precision and batch profile guards it.
Device memory and streams go through cuda-python, TensorRT's documented companion. Needs
TensorRT ≥ 10 (JetPack 6); `threads` has no effect on a GPU engine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .._optional import require
from ..bundle import Bundle
from ..errors import ConfigError, EngineNotInstalledError, ModelFileError, RuntimeEngineError
from ..types import Format, Precision
from .base import Runtime, RuntimeOptions
from .precision import EnginePrecision
from .tensorrt_cache import (
    BuildPlan,
    ProfileShapes,
    cache_paths,
    check_cached_engine,
    engine_key,
    engine_layer_precision,
    onnx_sha256,
    plan_for_bundle,
    profile_shapes,
    superseded_engines,
    write_cached_engine,
)
from .tensorrt_calibration import CALIBRATION_CACHE, EntropyCalibrator

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TensorRTOptions(RuntimeOptions):
    """`precision` None builds in the bundle's own precision (fp16 bundle → fp16 engine).

    An fp32 bundle can be built as fp16 (TensorRT 10 only; TensorRT 11 needs an fp16 bundle).
    `cache_dir` None keeps the engine in the bundle directory; `max_batch` bounds the dynamic batch.
    """

    precision: Precision | None = None
    workspace_bytes: int = 1 << 30
    opt_batch: int = 1
    max_batch: int = 8
    cache_dir: Path | None = None
    device: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.precision, str) and not isinstance(self.precision, Precision):
            try:
                object.__setattr__(self, "precision", Precision(self.precision.lower()))
            except ValueError:
                raise ConfigError(f"Unknown precision {self.precision!r}; choose fp32, fp16 or int8.") from None
        if self.workspace_bytes < 1 << 20:
            raise ConfigError(f"workspace_bytes must be at least 1 MiB, got {self.workspace_bytes}.")
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ConfigError(f"Need 1 ≤ opt_batch ≤ max_batch, got {self.opt_batch} and {self.max_batch}.")
        if self.device < 0:
            raise ConfigError(f"device must be a CUDA device index ≥ 0, got {self.device}.")
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    formats: ClassVar[frozenset[Format]] = frozenset({Format.ONNX})
    options_type = TensorRTOptions

    #: One line on where the engine came from ("cached engine …" or "built in 83.1 s, cached at …").
    cache_status: str = ""

    def _load(self) -> None:
        trt = require("tensorrt", extra="tensorrt", what="TensorRT")
        self._cuda = CudaRuntime(device=self.options.device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        engine_bytes, self._plan, self.cache_status = load_or_build_engine(
            trt, self._cuda, self.bundle, self.options, logger=self._logger
        )
        self._trt_runtime = trt.Runtime(self._logger)  # must outlive the engine it deserializes
        self._engine = self._trt_runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise RuntimeEngineError(
                f"TensorRT could not deserialize the engine for {self.bundle.path}; delete its *.engine files "
                "and load again to rebuild."
            )
        self._context = self._engine.create_execution_context()
        self._input_name = self.input_spec.name
        if len(self.output_names) != 1:
            raise ConfigError(
                f"The TensorRT runtime binds one output; {self.bundle.path} has {len(self.output_names)} "
                f"({', '.join(self.output_names)}). Run it with onnxruntime, or export a single-output graph."
            )
        self._output_name = self.output_names[0]
        io_names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        for tensor in (self._input_name, self._output_name):
            if tensor not in io_names:
                raise ModelFileError(
                    f"The TensorRT engine has no tensor {tensor!r} (it has {sorted(io_names)}); "
                    "the manifest and model.onnx disagree: re-export the bundle."
                )
        self._input_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._input_name)))
        self._output_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._output_name)))
        self._profile = profile_shapes(self.input_spec, opt_batch=self.options.opt_batch, max_batch=self.options.max_batch)
        self._set_input_shape(self._profile.max)
        max_output = tuple(self._context.get_tensor_shape(self._output_name))
        self._input = self._cuda.malloc(int(np.prod(self._profile.max)) * self._input_dtype.itemsize)
        self._output = self._cuda.malloc(int(np.prod(max_output)) * self._output_dtype.itemsize)
        self._context.set_tensor_address(self._input_name, self._input.ptr)
        self._context.set_tensor_address(self._output_name, self._output.ptr)
        self._stream = self._cuda.stream()

    def _read_precision(self) -> EnginePrecision:
        """Layer input types from TensorRT's engine inspector (the kernels the builder chose)."""
        trt = require("tensorrt", extra="tensorrt", what="TensorRT")
        try:
            inspector = self._engine.create_engine_inspector()
            information = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        except Exception as exc:  # noqa: BLE001 - older engines or bindings without the inspector
            return EnginePrecision.unknown(f"TensorRT's engine inspector failed ({type(exc).__name__})")
        return engine_layer_precision(information)

    @property
    def engine_config(self) -> dict[str, str | int | bool | None]:
        plan = self._plan
        return {
            "device": f"cuda:{self.options.device}",
            "threads": self.options.threads,
            "precision_hint": plan.precision.value,
            "builder_flags": ",".join(plan.flags) or None,
            "strongly_typed": plan.strongly_typed,
            "int8_scales": "calibration.cache" if plan.from_calibration_cache else ("q/dq" if plan.precision is Precision.INT8 else None),
            "streams": 1,
            "spinning": None,
            "static_shape": self._profile.min == self._profile.max,
            "batch_profile": f"{self._profile.min[0]}..{self._profile.max[0]} (opt {self._profile.opt[0]})",
        }

    def _run(self, batch: np.ndarray) -> np.ndarray:
        step = self._profile.max_batch
        return np.concatenate([self._run_chunk(batch[i : i + step]) for i in range(0, len(batch), step)])

    def _run_chunk(self, chunk: np.ndarray) -> np.ndarray:
        host_input = np.ascontiguousarray(chunk, dtype=self._input_dtype)
        self._set_input_shape(host_input.shape)
        self._cuda.copy_to_device(self._input, host_input, self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise RuntimeEngineError("TensorRT execute_async_v3 failed; see the TensorRT log above.")
        host_output = np.empty(tuple(self._context.get_tensor_shape(self._output_name)), dtype=self._output_dtype)
        self._cuda.copy_to_host(host_output, self._output, self._stream)
        self._cuda.synchronize(self._stream)  # host_input must stay alive until here
        return host_output.astype(np.float32, copy=False)

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        if not self._context.set_input_shape(self._input_name, tuple(int(d) for d in shape)):
            raise RuntimeEngineError(
                f"TensorRT rejected input shape {tuple(shape)}; the engine accepts {self._profile.min} to {self._profile.max}."
            )

    def close(self) -> None:
        for buffer in (getattr(self, "_input", None), getattr(self, "_output", None)):
            if buffer is not None:
                buffer.free()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            self._cuda.destroy_stream(stream)
            self._stream = None
        self._context = None
        self._engine = None
        self._trt_runtime = None


def load_or_build_engine(
    trt: Any,
    cuda: CudaRuntime,
    bundle: Bundle,
    options: TensorRTOptions,
    *,
    logger: Any,
    calibrator: EntropyCalibrator | None = None,
) -> tuple[bytes, BuildPlan, str]:
    """Serialized engine bytes for `bundle` on this GPU: from the cache when its key matches, else built.

    Returns (engine, plan, status line). Pass `calibrator` to build an INT8 engine from a float
    bundle (TensorRT 10); the engine is cached, so a later plain load with precision int8 reuses it.
    """
    plan = plan_for_bundle(bundle, requested=options.precision, tensorrt_version=trt.__version__)
    profile = profile_shapes(bundle.manifest.input, opt_batch=options.opt_batch, max_batch=options.max_batch)
    gpu_name, capability = cuda.device_identity()
    key = engine_key(
        gpu_name=gpu_name, compute_capability=capability, tensorrt_version=trt.__version__,
        onnx_sha256=onnx_sha256(bundle), plan=plan, profile=profile,
    )
    paths = cache_paths(options.cache_dir or bundle.path, key, stem=Path(bundle.manifest.model_file).stem)
    check = check_cached_engine(paths, key)
    if check.usable:
        return paths.engine.read_bytes(), plan, check.reason
    if paths.engine.exists():
        log.warning("Rebuilding the TensorRT engine: %s", check.reason)
    if plan.from_calibration_cache and calibrator is None:
        calibrator = EntropyCalibrator.from_cache(bundle.path / CALIBRATION_CACHE, input_spec=bundle.manifest.input)
    if plan.needs_calibrator and calibrator is None:
        raise ConfigError(
            f"No cached INT8 engine for {bundle.path} on this GPU, and building one from a float bundle needs "
            "calibration data: build it with edgevision's TensorRT INT8 calibration, or load a Q/DQ INT8 bundle."
        )
    log.info("Building a %s TensorRT engine for %s (minutes on a Jetson; cached afterwards)", plan.precision.value, bundle.path)
    started = time.perf_counter()
    engine = build_serialized_engine(
        trt, cuda, bundle, plan=plan, profile=profile, workspace_bytes=options.workspace_bytes,
        logger=logger, calibrator=calibrator,
    )
    seconds = time.perf_counter() - started
    try:
        write_cached_engine(paths, key, engine, build_seconds=seconds)
        status = f"built in {seconds:.1f} s, cached at {paths.engine}"
        for old in superseded_engines(paths.engine.parent, key, stem=Path(bundle.manifest.model_file).stem):
            old.key.unlink(missing_ok=True)  # key first: an engine without its key is never trusted
            old.engine.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("Could not cache the TensorRT engine at %s (%s); pass TensorRTOptions(cache_dir=...).", paths.engine, exc)
        status = f"built in {seconds:.1f} s, not cached ({exc.strerror or exc})"
    return engine, plan, status


def build_serialized_engine(
    trt: Any,
    cuda: CudaRuntime,
    bundle: Bundle,
    *,
    plan: BuildPlan,
    profile: ProfileShapes,
    workspace_bytes: int,
    logger: Any,
    calibrator: EntropyCalibrator | None = None,
) -> bytes:
    """Parse the bundle's ONNX file and build a serialized engine as `plan` says."""
    builder = trt.Builder(logger)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # ignored, always on, in 11
    flags = 1 << int(strongly_typed) if plan.strongly_typed and strongly_typed is not None else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(bundle.model_path)):
        errors = [str(parser.get_error(i)).strip() for i in range(parser.num_errors)]
        raise ModelFileError(
            f"TensorRT cannot parse {bundle.model_path}: {(errors or ['unknown error'])[0][:300]}. "
            "The file is corrupt or uses an unsupported operator; re-export the bundle."
        )
    input_name = bundle.manifest.input.name
    network_inputs = [network.get_input(i).name for i in range(network.num_inputs)]
    if network_inputs != [input_name]:
        raise ModelFileError(
            f"{bundle.model_path} has inputs {network_inputs}, but the manifest expects one named {input_name!r}; "
            "re-export the bundle."
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer types and precisions, for engine_precision
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.clear_flags:
        if hasattr(trt.BuilderFlag, flag):
            config.clear_flag(getattr(trt.BuilderFlag, flag))
    if not plan.strongly_typed:  # a detector's head listed by the quantiser stays FP32 in an INT8 engine
        from .tensorrt_precision import pin_float_layers, read_float_layers

        pin_float_layers(trt, network, config, read_float_layers(bundle.path))
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(input_name, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimisation)
    adapter = None
    try:
        if plan.needs_calibrator and calibrator is not None:
            shape = calibrator.batch_shape
            calibration = builder.create_optimization_profile()
            calibration.set_shape(input_name, shape, shape, shape)
            config.set_calibration_profile(calibration)
            adapter = calibrator.for_tensorrt(trt, cuda)
            config.int8_calibrator = adapter
        serialized = builder.build_serialized_network(network, config)
    finally:
        if adapter is not None:
            adapter.close()
    if serialized is None:
        if plan.from_calibration_cache:
            raise RuntimeEngineError(
                f"TensorRT could not build an INT8 engine from {bundle.path / CALIBRATION_CACHE} (see its log above); "
                "a cache written by another TensorRT version is rejected: quantise the model again on this device."
            )
        raise RuntimeEngineError(
            f"TensorRT could not build a {plan.precision.value} engine for {bundle.model_path} (see its log above); "
            "try a larger workspace_bytes or precision fp32."
        )
    return bytes(serialized)


# -- device memory through cuda-python ---------------------------------------------------------


@dataclass
class DeviceBuffer:
    """A cudaMalloc'd block; `free` is idempotent."""

    cuda: CudaRuntime
    ptr: int
    nbytes: int

    def free(self) -> None:
        if self.ptr:
            self.cuda.call(self.cuda.cudart.cudaFree(self.ptr), "cudaFree")
            self.ptr = 0


class CudaRuntime:
    """The handful of CUDA runtime calls this backend needs, with every status checked."""

    def __init__(self, *, device: int = 0) -> None:
        self.cudart = _import_cudart()
        count = self.call(self.cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if device >= count:
            raise RuntimeEngineError(
                f"CUDA device {device} does not exist ({count} found); TensorRT needs an NVIDIA GPU or a Jetson."
            )
        self.device = device
        self.call(self.cudart.cudaSetDevice(device), "cudaSetDevice")

    def call(self, result: tuple[Any, ...], what: str) -> Any:
        status, *values = result
        if status != self.cudart.cudaError_t.cudaSuccess:
            name = getattr(status, "name", str(status))
            raise RuntimeEngineError(f"CUDA call {what} failed with {name}; is the GPU visible to this process?")
        return values[0] if len(values) == 1 else tuple(values) or None

    def device_identity(self) -> tuple[str, str]:
        """(GPU name, compute capability "major.minor"), part of the engine cache key."""
        props = self.call(self.cudart.cudaGetDeviceProperties(self.device), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00").strip(), f"{props.major}.{props.minor}"

    def malloc(self, nbytes: int) -> DeviceBuffer:
        return DeviceBuffer(self, int(self.call(self.cudart.cudaMalloc(nbytes), "cudaMalloc")), nbytes)

    def stream(self) -> Any:
        return self.call(self.cudart.cudaStreamCreate(), "cudaStreamCreate")

    def destroy_stream(self, stream: Any) -> None:
        self.call(self.cudart.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def copy_to_device(self, buffer: DeviceBuffer, host: np.ndarray, stream: Any) -> None:
        self._check_fits(buffer, host)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call(self.cudart.cudaMemcpyAsync(buffer.ptr, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def copy_to_device_sync(self, buffer: DeviceBuffer, host: np.ndarray) -> None:
        self._check_fits(buffer, host)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.call(self.cudart.cudaMemcpy(buffer.ptr, host.ctypes.data, host.nbytes, kind), "cudaMemcpy")

    def copy_to_host(self, host: np.ndarray, buffer: DeviceBuffer, stream: Any) -> None:
        self._check_fits(buffer, host)
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.call(self.cudart.cudaMemcpyAsync(host.ctypes.data, buffer.ptr, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def synchronize(self, stream: Any) -> None:
        self.call(self.cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    @staticmethod
    def _check_fits(buffer: DeviceBuffer, host: np.ndarray) -> None:
        if not host.flags.c_contiguous or host.nbytes > buffer.nbytes:
            raise RuntimeEngineError(f"{host.nbytes} bytes do not fit the {buffer.nbytes}-byte device buffer.")


def _import_cudart() -> Any:
    """cuda-python's runtime module: `cuda.bindings.runtime` (≥ 12.6), else the older `cuda.cudart`."""
    try:
        return require("cuda.bindings.runtime", extra="tensorrt", what="cuda-python")
    except EngineNotInstalledError:
        return require("cuda.cudart", extra="tensorrt", what="cuda-python")


__all__ = ["EntropyCalibrator", "TensorRTOptions", "TensorRTRuntime", "build_serialized_engine", "load_or_build_engine"]
