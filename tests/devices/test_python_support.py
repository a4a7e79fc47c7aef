"""The device side runs on Python 3.10; the workstation side says clearly that it needs 3.11."""

from __future__ import annotations

import pytest

from edgevision import _optional
from edgevision.errors import EngineNotInstalledError


def test_a_workstation_extra_on_an_older_python_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(_optional, "WORKSTATION_PYTHON", (99, 0))  # this interpreter is "too old"
    with pytest.raises(EngineNotInstalledError, match=r"workstation side .* needs Python 99\.0 or newer"):
        _optional.require("json", extra="compress", what="PyTorch")
    assert _optional.require("json", extra="onnx").__name__ == "json"  # device extras are not affected


def test_a_workstation_extra_on_a_new_enough_python_imports(monkeypatch):
    monkeypatch.setattr(_optional, "WORKSTATION_PYTHON", (3, 0))
    assert _optional.require("json", extra="compress").__name__ == "json"
