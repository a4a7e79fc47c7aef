"""Where results go: a callback, a JSON-lines file, an annotated video, an on-screen window.

Sinks are generic over the task: they serialise with `payload.to_dict()` and draw with
`payload.draw()`. The pipeline closes every sink it was given, even when the run fails.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StreamError
from .metrics import LiveStats
from .overlay import draw_caption
from .results import FrameResult

logger = logging.getLogger(__name__)


class Sink(ABC):
    """Receives every result with its frame. Set `wants_stop` to end the run (e.g. window closed)."""

    wants_stop: bool = False

    def start(self, *, source_fps: float | None) -> None:
        """Called once before the first frame (a video writer wants the source's frame rate)."""

    @abstractmethod
    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        """Handle one result. `frame` is the original BGR frame; copy it before drawing on it."""

    def close(self) -> None:
        """Flush and release (idempotent)."""


class CallbackSink(Sink):
    """Calls `callback(result)` for every frame: the simplest way to act on predictions."""

    def __init__(self, callback: Callable[[FrameResult], Any]) -> None:
        self.callback = callback

    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        self.callback(result)


class JsonLinesSink(Sink):
    """One JSON object per result (index, capture time, payload, timings, latency), line-buffered."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file: Any = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise StreamError(f"Cannot write results to {self.path}: {exc.strerror}. Pick a writable path.") from None

    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        self._file.write(json.dumps(result.to_dict()) + "\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    @property
    def closed(self) -> bool:
        return bool(self._file.closed)


def annotate(frame: np.ndarray, result: FrameResult, stats: LiveStats) -> np.ndarray:
    """A copy of `frame` with the payload drawn and the live FPS in the top-right corner."""
    canvas = frame.copy()
    result.payload.draw(canvas)
    draw_caption(canvas, f"{stats.fps:.1f} FPS", right=True)
    return canvas


class VideoSink(Sink):
    """Writes annotated frames to a video file (mp4v by default; size from the first frame)."""

    def __init__(self, path: str | os.PathLike[str], *, fps: float | None = None, fourcc: str = "mp4v") -> None:
        if len(fourcc) != 4:
            raise StreamError(f"A FourCC code has 4 characters, got {fourcc!r} (e.g. 'mp4v', 'MJPG').")
        self.path = Path(path)
        self.fps = fps
        self.fourcc = fourcc
        self._writer: Any = None

    def start(self, *, source_fps: float | None) -> None:
        if self.fps is None:
            self.fps = source_fps or 30.0

    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        if self._writer is None:
            self._writer = self._open(frame.shape[1], frame.shape[0])
        self._writer.write(annotate(frame, result, stats))

    def _open(self, width: int, height: int) -> Any:
        import cv2

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fourcc = cv2.VideoWriter_fourcc(*self.fourcc)
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps or 30.0, (width, height))
        if not writer.isOpened():
            raise StreamError(
                f"Cannot write video {self.path} with codec {self.fourcc}: pick a writable .mp4 (mp4v) or .avi (MJPG)."
            )
        return writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def display_available() -> bool:
    """True when a window can be shown: OpenCV has a GUI backend and (on Linux) a display is set."""
    import cv2

    gui = re.search(r"GUI:\s+(\S+)", cv2.getBuildInformation())
    if gui is None or gui.group(1).upper() == "NONE":
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class DisplaySink(Sink):
    """Shows annotated frames in a window; q or Esc (or closing the window) ends the run."""

    def __init__(self, title: str = "edgevision") -> None:
        if not display_available():
            raise StreamError("No display here (headless, or OpenCV without GUI): run with --no-display.")
        self.title = title
        self._shown = False

    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        import cv2

        cv2.imshow(self.title, annotate(frame, result, stats))
        self._shown = True
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27) or cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            self.wants_stop = True

    def close(self) -> None:
        if self._shown:
            import cv2

            cv2.destroyWindow(self.title)
            self._shown = False
