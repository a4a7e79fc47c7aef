"""Runtimes: one small interface, one backend per engine, chosen by name.

Importing this package imports no engine and not torch; a backend's engine is imported when a
bundle is loaded with it. Third-party engines register through the ``edgevision.runtimes``
entry-point group (value: "package.module:RuntimeClass").
"""

from __future__ import annotations

import os

from ..bundle import Bundle
from ..registry import Registry
from ..types import Format
from .base import Runtime as Runtime
from .base import RuntimeOptions as RuntimeOptions

RUNTIMES: Registry[type[Runtime]] = Registry("runtime", entry_point_group="edgevision.runtimes")
RUNTIMES.register("onnxruntime", "edgevision.runtimes.onnxruntime:ONNXRuntime")
RUNTIMES.register("openvino", "edgevision.runtimes.openvino:OpenVINORuntime")
RUNTIMES.register("tflite", "edgevision.runtimes.tflite:TFLiteRuntime")
RUNTIMES.register("tensorrt", "edgevision.runtimes.tensorrt:TensorRTRuntime")
RUNTIMES.register("torch", "edgevision.runtimes.torch:TorchRuntime")

#: The runtime used for a bundle when none is named.
DEFAULT_RUNTIME = {
    Format.ONNX: "onnxruntime",
    Format.OPENVINO: "openvino",
    Format.TFLITE: "tflite",
    Format.TORCH: "torch",
}


def load_runtime(
    bundle: Bundle | str | os.PathLike[str],
    runtime: str | None = None,
    *,
    threads: int | None = None,
    options: RuntimeOptions | None = None,
) -> Runtime:
    """Open `bundle` with the named runtime (default: the usual engine for its format).

    `threads` is a shortcut for ``options=RuntimeOptions(threads=...)``; pass an engine's own
    options class (e.g. ``OpenVINOOptions``) for engine-specific settings.
    """
    from dataclasses import replace

    from ..errors import ConfigError

    if not isinstance(bundle, Bundle):
        bundle = Bundle.load(bundle)
    runtime_class = RUNTIMES.get(runtime_name(bundle, runtime))
    if options is None:
        options = runtime_class.options_type(threads=threads)
    elif threads is not None:
        if options.threads not in (None, threads):
            raise ConfigError(f"threads={threads} conflicts with options.threads={options.threads}; give one.")
        options = replace(options, threads=threads)
    return runtime_class(bundle, options)


def runtime_name(bundle: Bundle, runtime: str | None = None) -> str:
    """The runtime `load_runtime` uses for `bundle`: `runtime` if given, else its format's usual engine."""
    return runtime or DEFAULT_RUNTIME[bundle.manifest.format]


def stream_options(runtime: str, threads: int | None = None, workers: int = 1) -> RuntimeOptions:
    """`runtime`'s options for a stream: sharing the cores with a capture thread, and with `workers` forks.

    Engines that spin by default (ONNX Runtime) get it turned off; the others' defaults already yield.
    `threads` is the total for all `workers` (None: the engine's default for one, every core for
    several). OpenVINO's forks share one compiled model with a stream each (throughput mode); the
    other engines load one copy per worker, each with its share of the threads.
    """
    from dataclasses import fields

    from ..errors import ConfigError

    if workers < 1:
        raise ConfigError(f"workers must be 1 or more, got {workers}.")
    options_type = RUNTIMES.get(runtime).options_type
    names = {f.name for f in fields(options_type)}
    settings: dict[str, object] = {"allow_spinning": False} if "allow_spinning" in names else {}
    if workers > 1 and "streams" in names:
        settings |= {"streams": workers, "performance_hint": "THROUGHPUT"}
    elif workers > 1:
        threads = max(1, (threads or os.cpu_count() or workers) // workers)
    return options_type(threads=threads, **settings)


def available_runtimes() -> dict[str, bool]:
    """Registered runtime names → whether their engine package is installed here."""
    from .._optional import is_installed

    engine_module = {
        "onnxruntime": "onnxruntime",
        "openvino": "openvino",
        "tflite": ("ai_edge_litert", "tflite_runtime"),
        "tensorrt": "tensorrt",
        "torch": "torch",
    }
    result = {}
    for name in RUNTIMES.names():
        modules = engine_module.get(name)
        if modules is None:
            result[name] = True  # third-party: assume its package brought its engine
            continue
        modules = (modules,) if isinstance(modules, str) else modules
        result[name] = any(is_installed(m) for m in modules)
    return result


__all__ = [
    "RUNTIMES", "DEFAULT_RUNTIME", "Runtime", "RuntimeOptions", "available_runtimes", "load_runtime", "runtime_name",
    "stream_options",
]
