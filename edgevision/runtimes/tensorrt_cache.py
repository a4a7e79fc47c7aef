"""The TensorRT engine cache and build plan: pure Python, testable without TensorRT or a GPU.

A TensorRT engine is only valid for the GPU model, compute capability and TensorRT version that
built it, for the exact ONNX bytes, the precision and the batch profile. Building takes minutes on
a Jetson, so engines are cached; a cached engine is used only when the key recorded beside it
matches the current one field for field and the engine's own hash still matches. Anything else is
rebuilt, never trusted: a stale engine either fails to deserialize or, worse, computes garbage.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..bundle import Bundle, InputSpec, sha256_file
from ..errors import ConfigError, RuntimeEngineError
from ..types import Precision
from .precision import EnginePrecision, count
from .tensorrt_calibration import CALIBRATION_CACHE

KEY_SCHEMA = 2  # 2: engines are built with detailed layer information (their precision can be read back)
ENGINE_SUFFIX = ".engine"
KEY_SUFFIX = ".engine.json"
#: Oldest TensorRT whose Python API (named tensors, execute_async_v3) this backend uses.
MIN_TENSORRT_MAJOR = 10
#: From this major on, TensorRT builds strongly typed networks only (no FP16/INT8 builder flags).
STRONG_TYPING_ONLY_MAJOR = 11


@dataclass(frozen=True)
class ProfileShapes:
    """The optimisation profile of the engine's input: the batch sizes it accepts and tunes for."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @property
    def max_batch(self) -> int:
        return self.max[0]


def profile_shapes(spec: InputSpec, *, opt_batch: int, max_batch: int) -> ProfileShapes:
    """Min/opt/max input shapes: batch 1..max_batch for a dynamic-batch bundle, else its fixed shape."""
    if not spec.dynamic_batch:
        fixed = tuple(spec.shape)
        return ProfileShapes(fixed, fixed, fixed)
    if not 1 <= opt_batch <= max_batch:
        raise ConfigError(f"Need 1 ≤ opt_batch ≤ max_batch, got opt_batch={opt_batch}, max_batch={max_batch}.")
    rest = tuple(spec.shape[1:])
    return ProfileShapes((1, *rest), (opt_batch, *rest), (max_batch, *rest))


@dataclass(frozen=True)
class BuildPlan:
    """How to build: the precision the engine computes in and the builder settings that give it."""

    precision: Precision
    strongly_typed: bool  # precision comes from the ONNX file's own types
    flags: tuple[str, ...] = ()  # trt.BuilderFlag names to set
    clear_flags: tuple[str, ...] = ()  # trt.BuilderFlag names to clear
    needs_calibrator: bool = False
    from_calibration_cache: bool = False  # the scales come from the bundle's calibration.cache, not from images


def tensorrt_major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise RuntimeEngineError(f"Cannot read the TensorRT version {version!r}; reinstall TensorRT.") from None


def plan_build(
    *,
    requested: Precision | None,
    file_precision: Precision,
    tensorrt_version: str,
    calibration_cache: bool = False,
) -> BuildPlan:
    """Decide the build for `requested` precision (None: the bundle's own) or raise saying what to do.

    `file_precision` is the manifest's precision. An INT8 bundle is either a Q/DQ ONNX file (built
    strongly typed: the file's own int8 types) or, with `calibration_cache`, an fp32 ONNX file with
    the scales TensorRT 10's calibrator computed (built with the INT8 flag from those scales).
    Never changes the precision the user asked for: where this TensorRT cannot give it, it is an error.
    """
    major = tensorrt_major(tensorrt_version)
    if major < MIN_TENSORRT_MAJOR:
        raise RuntimeEngineError(
            f"TensorRT {tensorrt_version} is too old: edgevision needs TensorRT {MIN_TENSORRT_MAJOR} or later "
            "(JetPack 6 on Jetson Orin). Use the onnxruntime runtime on this device."
        )
    target = requested or file_precision
    weak_typing = major < STRONG_TYPING_ONLY_MAJOR
    if file_precision is Precision.BF16:
        raise ConfigError("bf16 bundles are OpenVINO bundles; TensorRT runs onnx bundles (fp32, fp16 or int8).")
    if file_precision is Precision.INT8:
        kind = "calibrated (fp32 file + calibration.cache)" if calibration_cache else "Q/DQ-quantised"
        if target is not Precision.INT8:
            raise ConfigError(
                f"This bundle is INT8 ({kind}); TensorRT runs it in int8, not {target.value}. "
                "Leave precision unset, or load an fp16/fp32 bundle."
            )
        if not calibration_cache:
            return BuildPlan(Precision.INT8, strongly_typed=True)
        if not weak_typing:
            raise ConfigError(
                f"This INT8 bundle holds TensorRT 10 calibration scales, but TensorRT {tensorrt_version} builds "
                "Q/DQ INT8 only (no calibration): quantise the model again with quantizer='tensorrt' on this device."
            )
        return BuildPlan(
            Precision.INT8, strongly_typed=False, flags=("INT8", "FP16"), needs_calibrator=True,
            from_calibration_cache=True,
        )
    if target is file_precision:
        clear = ("TF32",) if target is Precision.FP32 else ()  # TF32 would silently round FP32 matmuls
        return BuildPlan(target, strongly_typed=True, clear_flags=clear)
    if file_precision is Precision.FP16:  # target is FP32 or INT8
        raise ConfigError(
            f"The bundle's weights are FP16; a {target.value} engine cannot be built from them. "
            "Leave precision unset (fp16), or export an fp32 bundle."
        )
    if not weak_typing:
        hint = (
            "export the bundle with precision fp16 (`edgevision export --precision fp16`)"
            if target is Precision.FP16
            else "quantise the model to a Q/DQ ONNX bundle with `edgevision compress`"
        )
        raise ConfigError(
            f"TensorRT {tensorrt_version} builds in the ONNX file's own precision only (strong typing); "
            f"to run {target.value}, {hint}."
        )
    if target is Precision.FP16:
        return BuildPlan(Precision.FP16, strongly_typed=False, flags=("FP16",))
    return BuildPlan(Precision.INT8, strongly_typed=False, flags=("INT8", "FP16"), needs_calibrator=True)


@dataclass(frozen=True, kw_only=True)
class EngineKey:
    """Everything that makes a serialized engine valid. Equal keys ⇒ the engine may be reused."""

    gpu_name: str
    compute_capability: str  # "8.7" on Jetson Orin
    tensorrt_version: str
    onnx_sha256: str
    precision: str
    build_flags: tuple[str, ...]
    strongly_typed: bool
    profile: tuple[tuple[int, ...], ...]  # min, opt, max input shapes
    schema: int = KEY_SCHEMA

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form (tuples as lists), as stored in the key file."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def digest(self) -> str:
        """A short hash of the key: names the cache files, so different setups never collide."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def engine_key(
    *,
    gpu_name: str,
    compute_capability: str,
    tensorrt_version: str,
    onnx_sha256: str,
    plan: BuildPlan,
    profile: ProfileShapes,
) -> EngineKey:
    return EngineKey(
        gpu_name=gpu_name.strip(), compute_capability=compute_capability, tensorrt_version=tensorrt_version,
        onnx_sha256=onnx_sha256, precision=plan.precision.value, build_flags=tuple(sorted(plan.flags)),
        strongly_typed=plan.strongly_typed, profile=(profile.min, profile.opt, profile.max),
    )


def onnx_sha256(bundle: Bundle) -> str:
    """Hash of the bundle's ONNX files (the .onnx and any external-data side file), in order.

    A calibrated INT8 bundle's calibration.cache is left out: it is derived from the ONNX file (and
    the calibration images) and written by the same build that caches the engine.
    """
    names = [name for name in bundle.manifest.model_files if name != CALIBRATION_CACHE]
    if len(names) == 1:
        return sha256_file(bundle.path / names[0])
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}:{sha256_file(bundle.path / name)}\n".encode())
    return digest.hexdigest()


def plan_for_bundle(bundle: Bundle, *, requested: Precision | None, tensorrt_version: str) -> BuildPlan:
    """The build plan for `bundle` as loaded with precision `requested` (None: the bundle's own).

    An INT8 bundle builds an INT8 engine by default, whichever way it was quantised: strongly typed
    from a Q/DQ file, or with the INT8 builder flag from its calibration.cache.
    """
    return plan_build(
        requested=requested, file_precision=bundle.manifest.precision, tensorrt_version=tensorrt_version,
        calibration_cache=has_calibration_cache(bundle),
    )


def has_calibration_cache(bundle: Bundle) -> bool:
    """Whether `bundle` is a TensorRT-calibrated INT8 bundle: an fp32 ONNX file plus its calibration.cache."""
    return CALIBRATION_CACHE in bundle.manifest.model_files


#: Builder layer types (from the engine inspector) that do a model's arithmetic.
_COMPUTE_LAYER_WORDS = ("convolution", "gemm", "matrixmultiply", "fullyconnected", "deconvolution")
_TENSORRT_TYPES = (("int8", "int8"), ("fp8", "fp8"), ("bf16", "bf16"), ("half", "fp16"), ("fp16", "fp16"),
                   ("fp32", "fp32"), ("float", "fp32"))


def engine_layer_precision(engine_information: str) -> EnginePrecision:
    """Compute layers per precision from `IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`.

    Needs an engine built with ``ProfilingVerbosity.DETAILED`` (this backend builds them so): each
    layer then lists its "LayerType" and its inputs' "Format/Datatype" ("Int8 …", "Half …", "FP32 …").
    An engine built with less detail lists layer names only, and its precision is "unknown".
    """
    try:
        layers = json.loads(engine_information).get("Layers", [])
    except (ValueError, AttributeError):
        return EnginePrecision.unknown("TensorRT's engine information is not JSON")
    precisions = []
    for layer in layers:
        if not isinstance(layer, dict):
            return EnginePrecision.unknown("the TensorRT engine was built without detailed layer information")
        kind = str(layer.get("LayerType", "")).lower()
        if not any(word in kind for word in _COMPUTE_LAYER_WORDS):
            continue
        inputs = layer.get("Inputs") or [{}]
        datatype = str(inputs[0].get("Format/Datatype", "")).lower()
        precisions.append(next((name for word, name in _TENSORRT_TYPES if word in datatype), None))
    if not precisions:
        return EnginePrecision.unknown("TensorRT's engine information lists no convolution or matrix product")
    return EnginePrecision(count(precisions), source="TensorRT engine inspector (layer input types)")


@dataclass(frozen=True)
class CachePaths:
    engine: Path
    key: Path


def cache_paths(cache_dir: Path, key: EngineKey, *, stem: str = "model") -> CachePaths:
    base = f"{stem}.{key.digest}"
    return CachePaths(cache_dir / f"{base}{ENGINE_SUFFIX}", cache_dir / f"{base}{KEY_SUFFIX}")


@dataclass(frozen=True)
class CacheCheck:
    usable: bool
    reason: str  # one line for logs and `cache_status`


_FIELD_LABELS = {
    "gpu_name": "GPU", "compute_capability": "compute capability", "tensorrt_version": "TensorRT",
    "onnx_sha256": "ONNX file sha256", "precision": "precision", "build_flags": "builder flags",
    "strongly_typed": "strong typing", "profile": "batch profile", "schema": "key schema",
}


def check_cached_engine(paths: CachePaths, key: EngineKey) -> CacheCheck:
    """Whether the engine at `paths` may be used for `key`; the reason names what differs."""
    if not paths.engine.is_file():
        return CacheCheck(False, f"no cached engine at {paths.engine}")
    if not paths.key.is_file():
        return CacheCheck(False, f"{paths.engine.name} has no key file {paths.key.name}, so it cannot be trusted")
    try:
        record = json.loads(paths.key.read_text(encoding="utf-8"))
        recorded_key, engine_bytes, engine_sha = record["key"], record["engine_bytes"], record["engine_sha256"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return CacheCheck(False, f"key file {paths.key.name} is unreadable ({type(exc).__name__})")
    expected = key.as_dict()
    if recorded_key != expected:
        if not isinstance(recorded_key, dict):
            return CacheCheck(False, f"key file {paths.key.name} holds no key")
        differences = [
            f"{_FIELD_LABELS.get(field, field)} was {_short(recorded_key.get(field))} (now {_short(value)})"
            for field, value in expected.items()
            if recorded_key.get(field) != value
        ] or ["unexpected fields"]
        return CacheCheck(False, "cached engine was built for another setup: " + "; ".join(differences))
    if paths.engine.stat().st_size != engine_bytes or sha256_file(paths.engine) != engine_sha:
        return CacheCheck(False, f"{paths.engine.name} is truncated or was replaced since it was built")
    return CacheCheck(True, f"cached engine {paths.engine.name} (built {record.get('built_at', '?')})")


def write_cached_engine(paths: CachePaths, key: EngineKey, engine: bytes, *, build_seconds: float) -> None:
    """Write engine then key, each atomically: a crash leaves no key, so no half-written engine is trusted."""
    paths.engine.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(paths.engine, engine)
    record = {
        "key": key.as_dict(),
        "engine_bytes": len(engine),
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "build_seconds": round(build_seconds, 2),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(paths.key, (json.dumps(record, indent=2) + "\n").encode())


def superseded_engines(cache_dir: Path, key: EngineKey, *, stem: str = "model") -> list[CachePaths]:
    """Cached engines for this GPU that can never be used again: built by another TensorRT or from other ONNX bytes.

    Engines for other GPUs or precisions are kept (a bundle folder may be shared between devices).
    """
    found = []
    for key_file in sorted(cache_dir.glob(f"{stem}.*{KEY_SUFFIX}")):
        paths = CachePaths(key_file.with_name(key_file.name.removesuffix(KEY_SUFFIX) + ENGINE_SUFFIX), key_file)
        try:
            recorded = json.loads(key_file.read_text(encoding="utf-8"))["key"]
            same_gpu = (recorded["gpu_name"], recorded["compute_capability"]) == (key.gpu_name, key.compute_capability)
            current = (recorded["tensorrt_version"], recorded["onnx_sha256"]) == (key.tensorrt_version, key.onnx_sha256)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            continue  # not ours to judge
        if same_gpu and not current:
            found.append(paths)
    return found


def _atomic_write(path: Path, data: bytes) -> None:
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _short(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:12] + "…"
