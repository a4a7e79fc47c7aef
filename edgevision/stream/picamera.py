"""Raspberry Pi camera modules through picamera2 (libcamera), imported only when used."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import require
from ..errors import StreamError
from .sources import CaptureOptions, Source

DEFAULT_SIZE = (1280, 720)


class Picamera2Source(Source):
    """A Pi camera module. Frames come as RGB888, which picamera2 lays out B, G, R: OpenCV order."""

    def __init__(self, *, camera_num: int = 0, capture: CaptureOptions = CaptureOptions()) -> None:
        super().__init__(f"picamera2 camera {camera_num}")
        self.camera_num = camera_num
        self.options = capture
        self._camera: Any = None

    def open(self) -> None:
        self.release()
        picamera2 = require("picamera2", extra="picamera", what="picamera2 (Raspberry Pi camera)")
        size = (self.options.width or DEFAULT_SIZE[0], self.options.height or DEFAULT_SIZE[1])
        try:
            camera = picamera2.Picamera2(self.camera_num)
        except (RuntimeError, IndexError) as exc:
            raise StreamError(
                f"Pi camera {self.camera_num} did not open ({exc}). Check the ribbon cable and that "
                "`rpicam-hello --list-cameras` lists it; close other programs using the camera."
            ) from None
        controls = {"FrameRate": float(self.options.fps)} if self.options.fps else {}
        config = camera.create_video_configuration(main={"size": size, "format": "RGB888"}, controls=controls)
        camera.configure(config)
        camera.start()
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            raise StreamError(f"{self.description} is not open; call open() first.")
        try:
            frame = self._camera.capture_array("main")
        except Exception:  # noqa: BLE001 - libcamera raises many kinds on a lost camera
            return None
        return np.ascontiguousarray(frame[..., :3]) if frame is not None else None

    def release(self) -> None:
        if self._camera is not None:
            camera, self._camera = self._camera, None
            try:
                camera.stop()
            finally:
                camera.close()

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    @property
    def fps(self) -> float | None:
        return self.options.fps
