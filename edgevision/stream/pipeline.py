"""The capture ‖ inference pipeline: a capture thread feeds a bounded queue, the caller's thread infers.

capture thread: read frame → preprocess (the bundle's own spec) → queue
calling thread: queue → runtime.infer → task head (the bundle's task's, unless named) → sinks

Reading and decoding the next frame overlaps inference of the current one (OpenCV and the
engines release the GIL). With `workers` > 1 that many threads (the calling one included) each
take frames from the queue and infer on their own handle (`Runtime.fork`), so several frames are
in flight; results still reach the sinks one at a time, in frame order. A live source drops its
*oldest* queued frame when inference falls behind and is reopened with exponential back-off when
it fails; a file drops nothing and ends the run at its last frame. Ctrl-C / SIGTERM stop the run
cleanly: the source is released and every sink flushed and closed before `run()` returns its summary.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .._compat.enum import StrEnum
from ..errors import ConfigError, EdgeVisionError, StreamError
from ..preprocess import preprocess_batch
from ..runtimes.base import Runtime
from .framequeue import CLOSED, FrameQueue
from .heads import HeadOptions, make_head
from .metrics import EndReason, StreamMetrics, StreamSummary
from .results import FrameMeta, FrameResult, StageTimings
from .sinks import Sink
from .sources import Source, parse_source

logger = logging.getLogger(__name__)


class DropPolicy(StrEnum):
    DROP_OLDEST = "drop_oldest"  # keep latency low: the newest frame wins
    BLOCK = "block"  # keep every frame: capture waits for inference


@dataclass(frozen=True, kw_only=True)
class ReconnectPolicy:
    """Reopen a failed live source after initial_delay_s, doubling up to max_delay_s, max_retries times."""

    max_retries: int = 5
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    backoff: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.initial_delay_s < 0 or self.max_delay_s < self.initial_delay_s:
            raise ConfigError("Reconnect needs max_retries >= 0 and 0 <= initial_delay_s <= max_delay_s.")
        if self.backoff < 1:
            raise ConfigError(f"Reconnect backoff must be >= 1, got {self.backoff}.")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1-based)."""
        return min(self.initial_delay_s * self.backoff ** (attempt - 1), self.max_delay_s)


@dataclass(frozen=True, kw_only=True)
class StreamConfig:
    task: str | None = None  # a name in edgevision.stream.HEADS; None: the bundle's task's head (heads.HEAD_FOR_TASK)
    head: HeadOptions = HeadOptions()
    queue_size: int = 2  # frames waiting for inference
    max_frames: int | None = None  # stop after this many results
    drop_policy: DropPolicy | None = None  # None: DROP_OLDEST for live sources, BLOCK for files
    reconnect: ReconnectPolicy = ReconnectPolicy()
    handle_signals: bool = True  # install SIGINT/SIGTERM handlers (only ever in the main thread)
    # OpenCV's worker threads during the run (restored after). Resizing one frame is too small to
    # gain from them, and their spinning takes the cores the engine is using. None: leave OpenCV be.
    opencv_threads: int | None = 1
    # Frames inferred at once, each on its own thread and runtime handle. More than 1 trades each
    # frame's latency for throughput: open the runtime with stream_options(name, threads, workers)
    # so the workers share the engine's threads instead of each taking all of them.
    workers: int = 1

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ConfigError(f"queue_size must be 1 or more, got {self.queue_size}.")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError(f"max_frames must be 1 or more, got {self.max_frames}.")
        if self.opencv_threads is not None and self.opencv_threads < 0:
            raise ConfigError(f"opencv_threads must be 0 or more (0 and 1: no worker threads), got {self.opencv_threads}.")
        if self.workers < 1:
            raise ConfigError(f"workers must be 1 or more, got {self.workers}.")


@dataclass(frozen=True)
class _Captured:
    index: int
    captured_at: float  # wall clock
    captured: float  # perf_counter when the read returned
    capture_ms: float
    preprocess_ms: float
    frame: np.ndarray
    tensor: np.ndarray


class StreamPipeline:
    """Runs one source through one runtime into sinks. Create one per run; `stop()` is thread-safe.

    `run()` opens the source if it is not open yet and always releases it and closes every sink
    before returning or raising. The runtime stays the caller's to close.
    """

    def __init__(
        self,
        runtime: Runtime,
        source: Source | str | int,
        *,
        sinks: Sequence[Sink] = (),
        config: StreamConfig = StreamConfig(),
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.head = make_head(config.task, runtime.bundle.manifest, config.head)
        self.source = source if isinstance(source, Source) else parse_source(source)  # opened by run()
        self.sinks = tuple(sinks)
        self.metrics = StreamMetrics()
        live = self.source.is_live
        self.drop_policy = config.drop_policy or (DropPolicy.DROP_OLDEST if live else DropPolicy.BLOCK)
        self._queue: FrameQueue[_Captured] = FrameQueue(config.queue_size)
        # `_stop`: take no more frames (stop(), max_frames, a sink's stop, the end of the run); frames
        # already taken are still written in order. `_abort`: a worker failed, so a frame's turn may
        # never come; nobody waits for one.
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._end_reason: EndReason | None = None
        self._reason_lock = threading.Lock()
        self._capture_error: BaseException | None = None
        self._worker_error: BaseException | None = None
        self._failed_attempts = 0
        self._started = False
        # Frames are numbered as workers take them; results are written in that order.
        self._take_lock = threading.Lock()
        self._taken = 0
        self._turn = threading.Condition()
        self._written = 0

    def stop(self) -> None:
        """Ask the run to end after the frames in progress (safe from any thread or a signal handler).

        No new frame is taken; every frame already taken is inferred and written, in order.
        """
        self._note_end(EndReason.STOPPED)
        self._stop.set()

    def run(self) -> StreamSummary:
        """Process frames until the file ends, max_frames, stop() or a lost source; return the summary."""
        if self._started:
            raise StreamError("A StreamPipeline runs once; create a new one for another run.")
        self._started = True
        capture = threading.Thread(target=self._capture_loop, name="edgevision-capture", daemon=True)
        forks: list[Runtime] = []
        workers: list[threading.Thread] = []
        try:
            with self._signal_handlers(), limit_opencv_threads(self.config.opencv_threads):
                if not self.source.is_open:
                    self.source.open()
                forks = [self.runtime.fork() for _ in range(self.config.workers - 1)]
                for sink in self.sinks:
                    sink.start(source_fps=self.source.fps)
                capture.start()
                workers = [threading.Thread(target=self._worker_loop, args=(fork,), name=f"edgevision-infer-{i}",
                                            daemon=True) for i, fork in enumerate(forks, start=1)]
                for worker in workers:
                    worker.start()
                self._inference_loop(self.runtime)
        finally:
            self._shutdown(capture, workers, forks)
        if self._worker_error is not None:
            raise self._worker_error
        if self._capture_error is not None:
            error = self._capture_error
            if isinstance(error, EdgeVisionError):
                raise error
            raise StreamError(f"Reading {self.source.description} failed: {error}") from error
        return self.metrics.summary(source=self.source.description, end_reason=self._end_reason or EndReason.STOPPED)

    # -- inference: the calling thread, and any extra workers --------------------------------
    def _inference_loop(self, runtime: Runtime) -> None:
        """Take frames, infer, then write each result in its turn; returns when the run ends."""
        try:
            while (taken := self._take()) is not None:
                ticket, item = taken
                result, done = self._process(runtime, item)
                if not self._write_in_turn(ticket, result, item, done):
                    return
        except BaseException:
            self._abort.set()  # none waits for this frame's turn, which will never come
            self._stop.set()  # and the other workers take no more frames
            raise

    def _worker_loop(self, runtime: Runtime) -> None:
        try:
            self._inference_loop(runtime)
        except BaseException as exc:  # noqa: BLE001 - handed to run() and re-raised there
            if self._worker_error is None:
                self._worker_error = exc

    def _take(self) -> tuple[int, _Captured] | None:
        """The next frame and its place in the output order; None once the run is over."""
        with self._take_lock:
            while True:
                item = self._queue.get(timeout=0.1)
                if item is CLOSED or self._stop.is_set():
                    return None
                if item is None:  # nothing yet: a slow camera, or capture is reconnecting
                    continue
                self._taken += 1
                return self._taken - 1, item

    def _process(self, runtime: Runtime, item: _Captured) -> tuple[FrameResult, float]:
        start = time.perf_counter()
        name = self.head.output_name  # None: the primary output
        outputs = runtime.infer(item.tensor) if name is None else runtime.infer_outputs(item.tensor)[name]
        inferred = time.perf_counter()
        height, width = item.frame.shape[:2]
        payload = self.head(outputs[0], FrameMeta(item.index, item.captured_at, width, height))
        done = time.perf_counter()
        timings = StageTimings(capture_ms=item.capture_ms, preprocess_ms=item.preprocess_ms,
                               infer_ms=(inferred - start) * 1e3, postprocess_ms=(done - inferred) * 1e3)
        result = FrameResult(index=item.index, captured_at=item.captured_at, payload=payload, timings=timings,
                             latency_ms=(done - item.captured) * 1e3)
        return result, done

    def _write_in_turn(self, ticket: int, result: FrameResult, item: _Captured, done: float) -> bool:
        """Record and write `result` once every earlier frame is written; False when the run ends.

        A stop does not skip the wait: an earlier frame still in flight is written first, so the
        output has no gaps. Only an abort (a failed worker, whose frame never arrives) does.
        """
        with self._turn:
            while self._written != ticket:
                if self._abort.is_set():
                    return False
                self._turn.wait(0.05)
            try:
                return self._write(result, item, done)
            finally:
                self._written += 1
                self._turn.notify_all()

    def _write(self, result: FrameResult, item: _Captured, done: float) -> bool:
        if self._finished():  # a frame written before this one ended the run; another worker's is in flight
            return False
        self.metrics.record_result(result, done)
        if self.sinks:
            stats = self.metrics.live()
            for sink in self.sinks:
                sink.write(result, item.frame, stats)
        if self._finished():
            self._stop.set()
            return False
        return True

    def _finished(self) -> bool:
        """Whether max_frames results are written or a sink asked to stop (noting which)."""
        limit = self.config.max_frames
        if limit is not None and self.metrics.frames >= limit:
            self._note_end(EndReason.MAX_FRAMES)
            return True
        if any(sink.wants_stop for sink in self.sinks):
            self._note_end(EndReason.STOPPED)
            return True
        return False

    # -- the capture thread -----------------------------------------------------------------
    def _capture_loop(self) -> None:
        manifest = self.runtime.bundle.manifest
        input_spec = self.runtime.input_spec
        drop_oldest = self.drop_policy is DropPolicy.DROP_OLDEST
        # Without drops, exactly max_frames frames are needed; with drops nobody knows how many.
        capture_limit = None if drop_oldest else self.config.max_frames
        index = 0
        try:
            while not self._stop.is_set():
                if capture_limit is not None and index >= capture_limit:
                    return
                start = time.perf_counter()
                frame = self._read()
                captured = time.perf_counter()
                if frame is None:
                    if not self.source.is_live:
                        self._note_end(EndReason.END_OF_FILE)  # the inference loop drains the queue first
                        return
                    if not self._reconnect():
                        self._note_end(EndReason.SOURCE_LOST)
                        return
                    continue
                self._failed_attempts = 0
                wall = time.time()
                self.metrics.record_capture(captured)
                tensor = preprocess_batch([frame], manifest.preprocess, input_spec)
                prepared = time.perf_counter()
                item = _Captured(index, wall, captured, (captured - start) * 1e3, (prepared - captured) * 1e3,
                                 frame, tensor)
                dropped = self._queue.put(item, drop_oldest=drop_oldest, stop=self._stop)
                if dropped:
                    self.metrics.record_drop(dropped)
                index += 1
        except BaseException as exc:  # noqa: BLE001 - handed to run() and re-raised there
            self._capture_error = exc
            self._stop.set()
        finally:
            self._queue.close()

    def _read(self) -> np.ndarray | None:
        if not self.source.is_live:
            return self.source.read()
        try:
            return self.source.read()
        except Exception as exc:  # noqa: BLE001 - a live source failing is what reconnect is for
            logger.warning("Reading %s failed: %s", self.source.description, exc)
            return None

    def _reconnect(self) -> bool:
        """Reopen a live source with back-off; False when out of attempts or stopped."""
        policy = self.config.reconnect
        self.source.release()
        while self._failed_attempts < policy.max_retries:
            self._failed_attempts += 1
            attempt = self._failed_attempts
            delay = policy.delay(attempt)
            logger.warning("%s stopped delivering frames; reopening in %.2g s (attempt %d of %d).",
                           self.source.description, delay, attempt, policy.max_retries)
            if self._stop.wait(delay):
                return False
            try:
                self.source.open()
            except StreamError as exc:
                logger.warning("Reopening %s failed: %s", self.source.description, exc)
                continue
            self.metrics.record_reconnect()
            logger.info("%s reopened.", self.source.description)
            return True
        logger.error("Gave up on %s after %d reconnect attempts.", self.source.description, policy.max_retries)
        return False

    # -- ending -----------------------------------------------------------------------------
    def _note_end(self, reason: EndReason) -> None:
        """Record why the run ends; the first reason wins."""
        with self._reason_lock:
            if self._end_reason is None:
                self._end_reason = reason

    def _shutdown(
        self, capture: threading.Thread, workers: Sequence[threading.Thread], forks: Sequence[Runtime]
    ) -> None:
        self._stop.set()
        self._queue.close()
        for worker in workers:  # each finishes the frame it is inferring
            worker.join(timeout=30.0)
        if not any(worker.is_alive() for worker in workers):  # else an engine call hangs: leave it be
            for fork in forks:
                fork.close()
        if capture.is_alive():
            capture.join(timeout=5.0)
        if capture.is_alive():  # stuck inside a blocking read: releasing under it could crash the process
            logger.warning("%s did not return from a read; leaving it to the OS.", self.source.description)
        else:
            self.source.release()
        self._queue.clear()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - close every sink, then report
                errors.append(f"{type(sink).__name__}: {exc}")
        if errors:
            logger.error("Closing sinks failed: %s", "; ".join(errors))

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        if not self.config.handle_signals or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, _frame: object) -> None:
            if self._stop.is_set():  # a second Ctrl-C: stop waiting
                raise KeyboardInterrupt
            logger.info("%s received: stopping after the current frame.", signal.Signals(signum).name)
            self.stop()

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@contextlib.contextmanager
def limit_opencv_threads(count: int | None) -> Iterator[None]:
    """Set OpenCV's (process-wide) worker-thread count for the run and put it back afterwards."""
    if count is None:
        yield
        return
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def run_stream(
    runtime: Runtime,
    source: Source | str | int,
    *,
    sinks: Sequence[Sink] = (),
    config: StreamConfig = StreamConfig(),
) -> StreamSummary:
    """Run `source` through `runtime` into `sinks` until it ends; see StreamPipeline."""
    return StreamPipeline(runtime, source, sinks=sinks, config=config).run()
