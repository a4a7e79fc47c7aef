"""Engines' native log lines stay off the console, unless the call fails (then they explain the failure)."""

from __future__ import annotations

import os

import pytest

from edgevision._quiet import native_stderr_captured


def test_native_writes_to_fd2_are_hidden(capfd: pytest.CaptureFixture[str]) -> None:
    with native_stderr_captured():
        os.write(2, b"I0000 flatbuffer_export.cc] Estimated count of arithmetic ops\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_they_are_replayed_when_the_block_raises(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError, match="conversion failed"), native_stderr_captured():
        os.write(2, b"E0000 converter.cc] op FOO is not supported\n")
        raise RuntimeError("conversion failed")
    assert "op FOO is not supported" in capfd.readouterr().err
