"""The bundle path's modules import forward only: source ← export ← guard ← onnx_input ← quantize, no circle.

Guard, ONNX-in and quantisation once imported each other inside functions to dodge a cycle;
each now imports, first and alone, in a fresh interpreter, and none reaches back into the others.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "edgevision"
#: module → the modules of this group it may import (its position in the chain).
ALLOWED = {
    "edgevision.source": set(),
    "edgevision.export.writer": {"edgevision.source", "edgevision.export.parity"},
    "edgevision.export.parity": {"edgevision.source"},
    "edgevision.export.parity_detect": {"edgevision.source", "edgevision.export.parity"},
    "edgevision.compress.guard": {"edgevision.source", "edgevision.export.parity"},
    "edgevision.compress.onnx_input": {"edgevision.source", "edgevision.export.parity", "edgevision.export.writer"},
    "edgevision.compress.quantize": {
        "edgevision.source", "edgevision.export.parity", "edgevision.export.writer", "edgevision.compress.guard",
        "edgevision.compress.onnx_input",
    },
}


def _path(module: str) -> Path:
    relative = Path(*module.split(".")[1:])
    package = PACKAGE / relative / "__init__.py"
    return package if package.is_file() else (PACKAGE / relative).with_suffix(".py")


def _imports(module: str) -> set[str]:
    """Every edgevision module `module` imports, at top level or inside a function (relative imports resolved)."""
    path = _path(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_no_import_reaches_back_up_the_chain(module: str) -> None:
    group = set(ALLOWED)
    reached = {name for name in _imports(module) if name in group and name != module}
    assert reached <= ALLOWED[module], f"{module} imports {sorted(reached - ALLOWED[module])} (backwards)"


@pytest.mark.parametrize("module", ["edgevision.compress.guard", "edgevision.compress.onnx_input",
                                    "edgevision.compress.quantize", "edgevision.export", "edgevision.source"])
def test_each_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_source_module_is_a_leaf() -> None:
    edgevision_imports = {name for name in _imports("edgevision.source") if name.startswith("edgevision")}
    allowed_roots = ("edgevision.bundle", "edgevision.types", "edgevision.errors", "edgevision.preprocess")
    assert all(name.startswith(allowed_roots) for name in edgevision_imports), edgevision_imports
