"""Live stream statistics in constant memory, and the summary a run ends with.

A camera may run for weeks, so nothing here grows with the number of frames: only the last
`window_s` seconds of frames are kept (live FPS/latency, at most 4,096), and end-of-run
percentiles come from a uniform reservoir sample (exact for runs shorter than the reservoir).
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat.enum import StrEnum
from ..errors import ConfigError
from .results import STAGES, FrameResult, StageTimings


class EndReason(StrEnum):
    END_OF_FILE = "end of file"
    MAX_FRAMES = "max frames"
    STOPPED = "stopped"  # Ctrl-C, SIGTERM, stop(), or a sink asked to stop
    SOURCE_LOST = "source lost"  # a live source stayed down after every reconnect attempt


@dataclass(frozen=True)
class LiveStats:
    """What a status line shows, over the last `window_s` seconds (counts are for the whole run)."""

    frames: int
    fps: float
    latency_p50_ms: float
    latency_p90_ms: float
    stage_ms: StageTimings
    dropped: int
    reconnects: int


@dataclass(frozen=True, kw_only=True)
class StreamSummary:
    """How a run went. `fps` is end to end: results per second from the first capture to the last result."""

    source: str
    frames: int  # results produced
    captured: int  # frames read from the source (results + dropped + any in flight at stop)
    dropped: int
    reconnects: int
    duration_s: float
    fps: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    stage_mean_ms: StageTimings
    end_reason: EndReason

    def __post_init__(self) -> None:
        if min(self.frames, self.captured, self.dropped, self.reconnects) < 0:
            raise ConfigError("Frame, drop and reconnect counts must be >= 0.")
        if self.frames + self.dropped > self.captured:
            raise ConfigError(f"{self.frames} results + {self.dropped} drops exceed {self.captured} captured frames.")
        if self.duration_s < 0 or self.fps < 0:
            raise ConfigError("duration_s and fps must be >= 0.")
        if not self.latency_p50_ms <= self.latency_p90_ms <= self.latency_p99_ms:
            raise ConfigError("Latency percentiles must satisfy p50 <= p90 <= p99.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "frames": self.frames, "captured": self.captured, "dropped": self.dropped,
            "reconnects": self.reconnects, "duration_s": round(self.duration_s, 4), "fps": round(self.fps, 3),
            "latency_p50_ms": round(self.latency_p50_ms, 3), "latency_p90_ms": round(self.latency_p90_ms, 3),
            "latency_p99_ms": round(self.latency_p99_ms, 3), "stage_mean_ms": self.stage_mean_ms.to_dict(),
            "end_reason": self.end_reason.value,
        }


class Reservoir:
    """A uniform random sample of at most `size` values from a stream (Vitter's algorithm R)."""

    def __init__(self, size: int, *, seed: int = 0) -> None:
        if size < 1:
            raise ConfigError(f"Reservoir size must be 1 or more, got {size}.")
        self.size = size
        self.seen = 0
        self._values: list[float] = []
        self._random = random.Random(seed)

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self._values) < self.size:
            self._values.append(value)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self._values[slot] = value

    def percentiles(self, qs: tuple[float, ...]) -> tuple[float, ...]:
        if not self._values:
            return tuple(0.0 for _ in qs)
        return tuple(float(v) for v in np.percentile(np.asarray(self._values), qs))


class StreamMetrics:
    """Thread-safe counters fed by the capture thread and the inference loop."""

    def __init__(self, *, window_s: float = 2.0, reservoir_size: int = 8192) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._recent: deque[tuple[float, float, StageTimings]] = deque(maxlen=4096)
        self._latencies = Reservoir(reservoir_size)
        self._stage_sums = dict.fromkeys(STAGES, 0.0)
        self.frames = self.captured = self.dropped = self.reconnects = 0
        self._first_capture: float | None = None
        self._last_result: float | None = None
        self._live: tuple[float, LiveStats] | None = None

    def record_capture(self, at: float) -> None:
        with self._lock:
            self.captured += 1
            if self._first_capture is None:
                self._first_capture = at

    def record_drop(self, count: int = 1) -> None:
        with self._lock:
            self.dropped += count

    def record_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1

    def record_result(self, result: FrameResult, at: float) -> None:
        with self._lock:
            self.frames += 1
            self._last_result = at
            self._recent.append((at, result.latency_ms, result.timings))
            while self._recent[0][0] < at - self.window_s:  # keep only the live window
                self._recent.popleft()
            self._latencies.add(result.latency_ms)
            for stage in STAGES:
                self._stage_sums[stage] += getattr(result.timings, stage)

    def live(self, *, max_age_s: float = 0.1) -> LiveStats:
        """`snapshot()`, recomputed at most every `max_age_s` (sinks ask once per frame)."""
        now = time.perf_counter()
        if self._live is None or now - self._live[0] >= max_age_s:
            self._live = (now, self.snapshot(now))
        return self._live[1]

    def snapshot(self, now: float | None = None) -> LiveStats:
        now = time.perf_counter() if now is None else now
        with self._lock:
            recent = [entry for entry in self._recent if entry[0] >= now - self.window_s]
            frames, dropped, reconnects = self.frames, self.dropped, self.reconnects
        span = recent[-1][0] - recent[0][0] if recent else 0.0
        fps = (len(recent) - 1) / span if span > 0 else 0.0
        latencies = np.asarray([entry[1] for entry in recent]) if recent else np.zeros(1)
        p50, p90 = (float(v) for v in np.percentile(latencies, (50, 90)))
        means = {stage: float(np.mean([getattr(e[2], stage) for e in recent])) if recent else 0.0 for stage in STAGES}
        return LiveStats(frames=frames, fps=fps, latency_p50_ms=p50, latency_p90_ms=p90,
                         stage_ms=StageTimings(**means), dropped=dropped, reconnects=reconnects)

    def summary(self, *, source: str, end_reason: EndReason) -> StreamSummary:
        with self._lock:
            have_both = self._last_result is not None and self._first_capture is not None
            duration = (self._last_result - self._first_capture) if have_both else 0.0  # type: ignore[operator]
            p50, p90, p99 = self._latencies.percentiles((50, 90, 99))
            means = {stage: (total / self.frames if self.frames else 0.0) for stage, total in self._stage_sums.items()}
            return StreamSummary(
                source=source, frames=self.frames, captured=self.captured, dropped=self.dropped,
                reconnects=self.reconnects, duration_s=max(duration, 0.0),
                fps=self.frames / duration if duration > 0 else 0.0, latency_p50_ms=p50, latency_p90_ms=p90,
                latency_p99_ms=p99, stage_mean_ms=StageTimings(**means), end_reason=end_reason,
            )
