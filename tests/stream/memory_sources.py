"""In-memory sources for tests: real `Source` implementations that need no camera."""

from __future__ import annotations

import threading
import time

import numpy as np

from edgevision.errors import StreamError
from edgevision.stream import Source


class ListSource(Source):
    """Serves `frames` in order (cycling `count` times in total), live or file-like."""

    def __init__(self, frames: list[np.ndarray], *, count: int | None = None, live: bool = False,
                 interval_s: float = 0.0) -> None:
        super().__init__("memory")
        self.frames = frames
        self.count = len(frames) if count is None else count
        self.is_live = live
        self.interval_s = interval_s
        self.served = 0
        self.opens = 0
        self.releases = 0
        self._open = False

    def open(self) -> None:
        self.opens += 1
        self._open = True

    def read(self) -> np.ndarray | None:
        if not self._open:
            raise StreamError("read on a closed source")
        if self.served >= self.count:
            return None
        if self.interval_s:
            time.sleep(self.interval_s)
        frame = self.frames[self.served % len(self.frames)]
        self.served += 1
        return frame

    def release(self) -> None:
        if self._open:
            self.releases += 1
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open


class FlakySource(ListSource):
    """A live camera that disconnects after `fail_after` frames; reopening brings it back.

    `failed_opens` reopen attempts fail first (a camera still rebooting); `raise_on_failure`
    makes the disconnected read raise instead of returning None.
    """

    def __init__(self, frames: list[np.ndarray], *, fail_after: int, failed_opens: int = 0,
                 raise_on_failure: bool = False, count: int | None = None) -> None:
        super().__init__(frames, count=count if count is not None else 10**9, live=True)
        self.fail_after = fail_after
        self.failed_opens = failed_opens
        self.raise_on_failure = raise_on_failure
        self.disconnected = False
        self.open_times: list[float] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        self.open_times.append(time.perf_counter())
        if self.opens >= 1 and self.failed_opens > 0:  # the first open always works
            self.failed_opens -= 1
            self.opens += 1
            raise StreamError("camera still rebooting")
        super().open()
        self.disconnected = False

    def read(self) -> np.ndarray | None:
        if self.served == self.fail_after and not self.disconnected and self.opens == 1:
            self.disconnected = True
        if self.disconnected:
            if self.raise_on_failure:
                raise OSError("device unplugged")
            return None
        return super().read()
