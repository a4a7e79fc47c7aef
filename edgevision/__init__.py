"""edgevision: compress → export → run → benchmark image-recognition models on edge devices.

The public API is small. Device-side names (Bundle, load_runtime, errors) import only numpy,
OpenCV and pydantic; workstation-side names (TrainedModel, export, compress) load torch when
first used, so ``import edgevision`` works on a device without torch.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from . import errors as errors
from .bundle import Bundle as Bundle
from .bundle import InputSpec as InputSpec
from .bundle import Manifest as Manifest
from .bundle import PreprocessSpec as PreprocessSpec
from .types import ColorOrder as ColorOrder
from .types import Format as Format
from .types import Layout as Layout
from .types import Precision as Precision
from .types import ResizePolicy as ResizePolicy

__version__ = "0.1.0"

_LAZY = {
    "load_runtime": "edgevision.runtimes:load_runtime",
    "TrainedModel": "edgevision.model:TrainedModel",
    "export": "edgevision.export:export",
    "ParityConfig": "edgevision.export.parity:ParityConfig",
    "bench": "edgevision.bench:bench",
    "BenchConfig": "edgevision.bench:BenchConfig",
}

if TYPE_CHECKING:
    from .bench import BenchConfig as BenchConfig
    from .bench import bench as bench
    from .export import export as export
    from .export.parity import ParityConfig as ParityConfig
    from .model import TrainedModel as TrainedModel
    from .runtimes import load_runtime as load_runtime


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'edgevision' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    value = getattr(import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


class _Package(ModuleType):
    """`edgevision.export` and `edgevision.bench` stay the functions, whatever was imported first.

    Importing a sub-package binds it on its parent (`import edgevision.export` sets the
    attribute `edgevision.export` to the module), which would replace the function of the same
    name, so `from edgevision.export import ParityConfig` followed by `edgevision.export(...)`
    raised "'module' object is not callable". The binding is skipped for these names: the
    function stays the public attribute; the sub-package is still importable by name
    (`from edgevision.export import ParityConfig`, `importlib.import_module("edgevision.export")`).
    One form cannot tell them apart: `import edgevision.export as m` reads the attribute, so `m`
    is the function; import the sub-package's names with `from edgevision.export import ...`.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "Bundle", "ColorOrder", "Format", "InputSpec", "Layout", "Manifest", "Precision", "PreprocessSpec",
    "ResizePolicy", "errors", *_LAZY,
]
