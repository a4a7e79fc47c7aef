"""Sinks that need no model: errors for unusable outputs, and the headless display check."""

from __future__ import annotations

import pytest

from edgevision.errors import StreamError
from edgevision.stream import DisplaySink, JsonLinesSink, VideoSink, display_available


def test_display_is_unavailable_headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_available() is False
    with pytest.raises(StreamError, match="--no-display"):
        DisplaySink()


def test_jsonl_to_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StreamError, match="Cannot write results"):
        JsonLinesSink(blocker / "sub" / "out.jsonl")


def test_video_sink_rejects_a_bad_fourcc(tmp_path):
    with pytest.raises(StreamError, match="4 characters"):
        VideoSink(tmp_path / "x.mp4", fourcc="h264x")
