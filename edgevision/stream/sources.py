"""Video sources behind one interface: cameras, files, network streams, GStreamer, picamera2.

`open_source("0" | "clip.mp4" | "rtsp://..." | "gst:... ! appsink" | "picamera2")` picks the
class and opens it. Every source hands out BGR uint8 frames (what OpenCV and the bundle's
preprocessing expect) and says whether it is live: a live source is reopened when it drops
out and loses its oldest frames when inference falls behind; a file is read to its end.
"""

from __future__ import annotations

import os
import re
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..errors import ConfigError, StreamError, did_you_mean

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
PICAMERA_NAMES = ("picamera2", "picamera")


@dataclass(frozen=True, kw_only=True)
class CaptureOptions:
    """Requests for sources; None keeps the device's default. Files ignore size and fps."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    timeout_s: float = 10.0  # network open/read timeout: a stalled stream fails a read after this long
    # FFmpeg decoder threads for files and network streams. The pipeline already decodes on its own
    # thread beside the engine, and FFmpeg's frame threads cost ~2× the CPU per 640×480 frame, taken
    # from the engine. None lets FFmpeg use every core (a 1080p H.264 stream on a slow board may need it).
    decode_threads: int | None = 1

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps", "decode_threads"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"Capture {name} must be positive, got {value}.")
        if self.timeout_s <= 0:
            raise ConfigError(f"Capture timeout_s must be positive, got {self.timeout_s}.")


class Source(ABC):
    """Where frames come from. `read()` returns a BGR frame, or None when none came."""

    #: True for cameras and network streams (drop frames, reconnect), False for files (read all).
    is_live: bool = True

    def __init__(self, description: str) -> None:
        self.description = description

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raises StreamError with what to check. Safe to call after release()."""

    @abstractmethod
    def read(self) -> np.ndarray | None:
        """The next frame (H×W×3 uint8 BGR), or None: end of file, or a live source that failed or stalled."""

    @abstractmethod
    def release(self) -> None:
        """Free the device or file (idempotent)."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """True between a successful open() and release()."""

    @property
    def fps(self) -> float | None:
        """The source's nominal frame rate, when it reports one."""
        return None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.description!r})"


class OpenCVSource(Source):
    """A source read through cv2.VideoCapture; subclasses say how to open it."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self._capture: Any = None

    @abstractmethod
    def _make_capture(self) -> Any:
        """A new cv2.VideoCapture (opened or not)."""

    @abstractmethod
    def _open_error(self) -> str:
        """One line: why it might not have opened and what to check."""

    def open(self) -> None:
        self.release()
        capture = self._make_capture()
        if not capture.isOpened():
            capture.release()
            raise StreamError(self._open_error())
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            raise StreamError(f"{self.description} is not open; call open() first.")
        import cv2

        try:
            ok, frame = self._capture.read()
        except cv2.error:
            return None
        return frame if ok and frame is not None else None

    def release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    @property
    def is_open(self) -> bool:
        return self._capture is not None

    @property
    def fps(self) -> float | None:
        if self._capture is None:
            return None
        import cv2

        value = float(self._capture.get(cv2.CAP_PROP_FPS))
        return value if 0 < value < 1000 else None


class CameraSource(OpenCVSource):
    """A local camera by index or device path (V4L2 on Linux)."""

    def __init__(self, device: int | str, *, capture: CaptureOptions = CaptureOptions()) -> None:
        super().__init__(f"camera {device}")
        self.device = device
        self.options = capture

    def _make_capture(self) -> Any:
        import cv2

        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        capture = cv2.VideoCapture(self.device, backend)
        if capture.isOpened():
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a stale backlog
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.options.width),
                                (cv2.CAP_PROP_FRAME_HEIGHT, self.options.height), (cv2.CAP_PROP_FPS, self.options.fps)):
                if value is not None:
                    capture.set(prop, value)
        return capture

    def _open_error(self) -> str:
        return (f"Camera {self.device} did not open: it does not exist or another program holds it. "
                "List cameras with `ls /dev/video*` (or `v4l2-ctl --list-devices`) and pass that index.")


class VideoFileSource(OpenCVSource):
    """A video file, read to its end; nothing is dropped."""

    is_live = False

    def __init__(self, path: str | os.PathLike[str], *, capture: CaptureOptions = CaptureOptions()) -> None:
        super().__init__(str(path))
        self.path = Path(path)
        self.options = capture

    def open(self) -> None:
        if not self.path.is_file():
            raise StreamError(f"Video file {self.path} does not exist. Check the path.")
        super().open()

    def _make_capture(self) -> Any:
        import cv2

        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG, _decoder_params(self.options))
        if capture.isOpened():
            return capture
        capture.release()  # an OpenCV without FFmpeg, or a format only another backend reads
        return cv2.VideoCapture(str(self.path))

    def _open_error(self) -> str:
        return (f"{self.path} cannot be read as video: it is not a video file or its codec is not supported by "
                "this OpenCV build. Re-encode it (e.g. ffmpeg -i in -c:v mpeg4 out.mp4) or check the file.")


class StreamURLSource(OpenCVSource):
    """An RTSP/HTTP/RTMP stream through FFmpeg, with open and read timeouts so a stall fails a read."""

    def __init__(self, url: str, *, capture: CaptureOptions = CaptureOptions()) -> None:
        super().__init__(redact_url(url))
        self.url = url
        self.options = capture

    def _make_capture(self) -> Any:
        import cv2

        timeout_ms = int(self.options.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
        return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params + _decoder_params(self.options))

    def _open_error(self) -> str:
        return (f"Stream {self.description} did not open within {self.options.timeout_s:g} s: check the address, "
                "credentials and that the camera is reachable (try it in `ffplay`).")


class GStreamerSource(OpenCVSource):
    """A GStreamer pipeline ending in appsink (Jetson CSI cameras, hardware decoders)."""

    def __init__(self, pipeline: str) -> None:
        super().__init__(f"gst:{pipeline}")
        self.pipeline = pipeline

    def open(self) -> None:
        if not opencv_has_gstreamer():
            raise StreamError(
                "This OpenCV build has no GStreamer support, so gst: sources cannot open. On a Jetson use the "
                "JetPack OpenCV (apt install python3-opencv) rather than opencv-python from pip."
            )
        super().open()

    def _make_capture(self) -> Any:
        import cv2

        return cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)

    def _open_error(self) -> str:
        return ("The GStreamer pipeline did not start. Test it with `gst-launch-1.0 <pipeline minus appsink> ! "
                "fakesink`, and make sure it ends in `appsink` with format=BGR.")


def _decoder_params(options: CaptureOptions) -> list[int]:
    """cv2.VideoCapture open parameters for FFmpeg's decoder thread count (none: FFmpeg decides)."""
    import cv2

    return [] if options.decode_threads is None else [cv2.CAP_PROP_N_THREADS, options.decode_threads]


def jetson_csi_pipeline(*, sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30,
                        flip_method: int = 0) -> str:
    """The usual Jetson CSI camera pipeline (nvarguscamerasrc → BGR appsink, newest frame only)."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv flip-method={flip_method} ! video/x-raw, width={width}, height={height}, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
    )


def opencv_has_gstreamer() -> bool:
    import cv2

    return re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()) is not None


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_source(spec: str | int, *, capture: CaptureOptions = CaptureOptions()) -> Source:
    """The source `spec` names, not yet opened. Raises StreamError for anything unrecognised."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 0:
            raise StreamError(f"Camera index {spec} is negative; cameras are numbered from 0.")
        return CameraSource(spec, capture=capture)
    if not isinstance(spec, str):
        raise StreamError(f"A source is a string or camera index, got {type(spec).__name__}.")
    text = spec.strip()
    if text.isdigit():
        return CameraSource(int(text), capture=capture)
    if text.lower() in PICAMERA_NAMES:
        from .picamera import Picamera2Source

        return Picamera2Source(capture=capture)
    if text.startswith("gst:"):
        pipeline = text[4:].strip()
        if not pipeline:
            raise StreamError("The gst: source has no pipeline after 'gst:'. Example: gst:videotestsrc ! appsink")
        return GStreamerSource(pipeline)
    scheme = urlsplit(text).scheme.lower()
    if scheme in URL_SCHEMES:
        return StreamURLSource(text, capture=capture)
    if re.fullmatch(r"/dev/video\d+", text):
        return CameraSource(text, capture=capture)
    if text and Path(text).exists():
        return VideoFileSource(text, capture=capture)
    if "://" in text:
        raise StreamError(
            f"Unknown source {spec!r}: URL scheme {scheme!r} is not supported. Use one of: {', '.join(URL_SCHEMES)}."
        )
    if Path(text).suffix or os.sep in text or "/" in text:
        raise StreamError(f"Video file {text} does not exist. Check the path (relative to {Path.cwd()}).")
    hint = did_you_mean(text.lower(), PICAMERA_NAMES)
    raise StreamError(
        f"Unknown source {spec!r}: not a camera index, an existing video file, a URL (rtsp://, http://), "
        f"a gst: pipeline or picamera2.{hint}"
    )


def open_source(spec: str | int | Source, *, capture: CaptureOptions = CaptureOptions()) -> Source:
    """Parse `spec` (or take a Source) and open it; raises StreamError saying what to check."""
    source = spec if isinstance(spec, Source) else parse_source(spec, capture=capture)
    source.open()
    return source
