"""The capture ‖ inference pipeline through ONNX Runtime on a real video of digits."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from edgevision.runtimes import load_runtime
from edgevision.stream import (
    CallbackSink, DropPolicy, EndReason, FrameResult, JsonLinesSink, StreamConfig, StreamPipeline, VideoSink,
    open_source, run_stream,
)
from edgevision.stream.heads import HeadOptions
from tests.stream.memory_sources import ListSource
from tests.stream.videos import FRAMES, SIZE, decode_all, digit_frame, digit_images


@pytest.fixture(scope="module")
def runtime(onnx_bundle):
    with load_runtime(onnx_bundle, threads=1) as engine:
        yield engine


def test_stream_predictions_equal_offline_predictions(runtime, digit_video):
    results: list[FrameResult] = []
    summary = run_stream(runtime, open_source(str(digit_video)), sinks=[CallbackSink(results.append)],
                         config=StreamConfig(head=HeadOptions(top_k=3)))
    offline = runtime.predict(decode_all(digit_video))
    assert [r.index for r in results] == list(range(FRAMES))
    assert summary.frames == summary.captured == FRAMES and summary.dropped == 0
    assert summary.end_reason is EndReason.END_OF_FILE
    exp = np.exp(offline - offline.max(axis=1, keepdims=True))
    probs = exp / exp.sum(axis=1, keepdims=True)
    for result in results:
        top = result.payload.top_k
        assert len(top) == 3
        assert top[0].label == runtime.bundle.manifest.labels[int(offline[result.index].argmax())]
        expected = np.sort(probs[result.index])[::-1][:3]
        np.testing.assert_allclose([p.score for p in top], expected, rtol=1e-4, atol=1e-6)


def test_the_model_reads_the_digits_in_the_video(runtime, digit_video):
    """Not just self-consistent: most held digits are recognised (the clip shows 0..9 in turn)."""
    results: list[FrameResult] = []
    run_stream(runtime, str(digit_video), sinks=[CallbackSink(results.append)])
    correct = [r.payload.top1.label == str((r.index // 6) % 10) for r in results]
    assert np.mean(correct) >= 0.7


def test_results_carry_timings_and_latency(runtime, digit_video):
    results: list[FrameResult] = []
    summary = run_stream(runtime, str(digit_video), sinks=[CallbackSink(results.append)],
                         config=StreamConfig(max_frames=12))
    assert len(results) == 12 and summary.end_reason is EndReason.MAX_FRAMES
    for r in results:
        t = r.timings
        assert t.infer_ms > 0 and t.preprocess_ms > 0 and t.capture_ms > 0
        assert r.latency_ms >= t.infer_ms + t.postprocess_ms
        assert abs(r.captured_at - time.time()) < 600
    assert summary.latency_p50_ms <= summary.latency_p90_ms <= summary.latency_p99_ms
    assert summary.fps > 0 and summary.stage_mean_ms.infer_ms > 0


def test_jsonl_and_annotated_video_sinks(runtime, digit_video, tmp_path):
    jsonl, video = tmp_path / "out" / "results.jsonl", tmp_path / "annotated.mp4"
    run_stream(runtime, str(digit_video), sinks=[JsonLinesSink(jsonl), VideoSink(video)],
               config=StreamConfig(head=HeadOptions(top_k=2)))
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["index"] for line in lines] == list(range(FRAMES))
    assert lines[0]["kind"] == "classification" and len(lines[0]["top_k"]) == 2
    assert set(lines[0]["timings"]) == {"capture_ms", "preprocess_ms", "infer_ms", "postprocess_ms"}
    written = decode_all(video)
    original = decode_all(digit_video)
    assert len(written) == FRAMES and written[0].shape == (SIZE[1], SIZE[0], 3)
    # The label box is drawn in the top-left corner; the middle of the frame is untouched.
    corner = np.abs(written[0][:20, :40].astype(int) - original[0][:20, :40].astype(int)).mean()
    middle = np.abs(written[0][200:280, 280:360].astype(int) - original[0][200:280, 280:360].astype(int)).mean()
    assert corner > 50 and middle < 10


def test_file_source_never_drops_even_when_inference_is_slow(runtime, digits):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=30, live=False)
    slow = CallbackSink(lambda result: time.sleep(0.01))
    summary = run_stream(runtime, source, sinks=[slow])
    assert summary.frames == 30 and summary.dropped == 0
    assert source.releases == 1 and not source.is_open


@pytest.mark.parametrize("workers", [1, 2])
def test_live_source_drops_oldest_when_inference_falls_behind(runtime, digits, workers):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=400, live=True, interval_s=0.001)
    indices: list[int] = []

    def slow(result: FrameResult) -> None:
        indices.append(result.index)
        time.sleep(0.02)

    summary = run_stream(runtime, source, sinks=[CallbackSink(slow)], config=StreamConfig(max_frames=15, workers=workers))
    assert summary.frames == 15 and summary.dropped > 0
    assert indices == sorted(indices) and indices[-1] > 15  # newer frames replaced stale ones
    assert summary.frames + summary.dropped <= summary.captured


class _SlowEngine:
    """A runtime whose every inference takes at least `seconds` (a big model on a small board)."""

    def __init__(self, runtime, seconds: float) -> None:  # noqa: ANN001
        self.runtime, self.seconds = runtime, seconds

    def __getattr__(self, name: str):  # noqa: ANN204 - bundle, input_spec, close: the real runtime's
        return getattr(self.runtime, name)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds)
        return self.runtime.infer(batch)

    def fork(self) -> _SlowEngine:
        return _SlowEngine(self.runtime.fork(), self.seconds)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_slow_engine_on_a_live_source_gets_the_newest_frames(runtime, digits, workers):
    """Behind a slow engine, a live queue keeps the newest frames: each inference starts on a frame captured
    moments before, not one that waited out the previous inference, so capture → result latency stays bounded."""
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)[:20]]
    source = ListSource(frames, count=10**6, live=True, interval_s=0.001)
    results: list[FrameResult] = []
    slow_infer_s = 0.1
    config = StreamConfig(max_frames=12, queue_size=2, workers=workers, handle_signals=False)
    summary = run_stream(_SlowEngine(runtime, slow_infer_s), source, sinks=[CallbackSink(results.append)], config=config)
    assert summary.frames == 12 and summary.dropped > 0
    assert [r.index for r in results] == sorted(r.index for r in results)
    # How long each frame waited between capture and the start of its inference. A queue that kept its oldest
    # frames would hand over one captured a whole inference (100 ms) earlier.
    waited_ms = [r.latency_ms - r.timings.infer_ms - r.timings.postprocess_ms for r in results[workers:]]
    assert float(np.median(waited_ms)) < slow_infer_s * 1e3 / 2
    assert max(r.latency_ms for r in results[workers:]) < 2 * slow_infer_s * 1e3 + 200


def test_drop_policy_can_be_forced(runtime, digits):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=25, live=True)
    summary = run_stream(runtime, source, sinks=[CallbackSink(lambda r: time.sleep(0.005))],
                         config=StreamConfig(drop_policy=DropPolicy.BLOCK, max_frames=25))
    assert summary.frames == 25 and summary.dropped == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_stop_from_another_thread_ends_cleanly(runtime, digits, tmp_path, workers):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=10**6, live=True, interval_s=0.002)
    jsonl = JsonLinesSink(tmp_path / "r.jsonl")
    pipeline = StreamPipeline(runtime, source, sinks=[jsonl], config=StreamConfig(workers=workers))
    timer = threading.Timer(0.5, pipeline.stop)
    timer.start()
    summary = pipeline.run()
    assert summary.end_reason is EndReason.STOPPED and summary.frames > 0
    assert not source.is_open and jsonl.closed
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == summary.frames


def test_sigint_stops_the_run_with_a_summary(runtime, digits):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=10**6, live=True)
    before = signal.getsignal(signal.SIGINT)

    seen: list[int] = []

    def interrupt(result: FrameResult) -> None:
        seen.append(result.index)
        if len(seen) == 6:
            os.kill(os.getpid(), signal.SIGINT)

    summary = run_stream(runtime, source, sinks=[CallbackSink(interrupt)])
    assert summary.end_reason is EndReason.STOPPED and 6 <= summary.frames <= 7  # stops after the current frame
    assert not source.is_open
    assert signal.getsignal(signal.SIGINT) is before


def test_a_failing_sink_still_releases_the_source_and_closes_sinks(runtime, digits, tmp_path):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=50, live=False)
    jsonl = JsonLinesSink(tmp_path / "r.jsonl")

    def explode(result: FrameResult) -> None:
        if result.index == 3:
            raise RuntimeError("sink bug")

    with pytest.raises(RuntimeError, match="sink bug"):
        run_stream(runtime, source, sinks=[jsonl, CallbackSink(explode)])
    assert not source.is_open and jsonl.closed


def test_a_pipeline_runs_once(runtime, digit_video):
    pipeline = StreamPipeline(runtime, str(digit_video), config=StreamConfig(max_frames=2))
    pipeline.run()
    from edgevision.errors import StreamError

    with pytest.raises(StreamError, match="runs once"):
        pipeline.run()


def test_video_writer_uses_the_source_frame_rate(runtime, digit_video, tmp_path):
    out = tmp_path / "v.mp4"
    run_stream(runtime, str(digit_video), sinks=[VideoSink(out)], config=StreamConfig(max_frames=5))
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    capture.release()


def test_the_run_uses_one_opencv_thread_and_restores_the_setting(runtime, digit_video):
    """Capture must not spawn OpenCV workers that compete with the engine; the caller's setting comes back."""
    seen: list[int] = []
    previous = cv2.getNumThreads()
    cv2.setNumThreads(2)
    try:
        run_stream(runtime, str(digit_video), sinks=[CallbackSink(lambda _r: seen.append(cv2.getNumThreads()))],
                   config=StreamConfig(max_frames=3))
        assert set(seen) == {1}
        assert cv2.getNumThreads() == 2
        run_stream(runtime, str(digit_video), sinks=[CallbackSink(lambda _r: seen.append(cv2.getNumThreads()))],
                   config=StreamConfig(max_frames=3, opencv_threads=None))
        assert seen[-1] == 2
    finally:
        cv2.setNumThreads(previous)


def test_negative_opencv_threads_is_a_config_error():
    from edgevision.errors import ConfigError

    with pytest.raises(ConfigError, match="opencv_threads"):
        StreamConfig(opencv_threads=-1)


def test_two_workers_give_the_same_results_in_frame_order(runtime, digit_video):
    one: list[FrameResult] = []
    two: list[FrameResult] = []
    run_stream(runtime, str(digit_video), sinks=[CallbackSink(one.append)])
    summary = run_stream(runtime, str(digit_video), sinks=[CallbackSink(two.append)], config=StreamConfig(workers=2))
    assert summary.frames == FRAMES and summary.end_reason is EndReason.END_OF_FILE and summary.dropped == 0
    assert [r.index for r in two] == list(range(FRAMES))
    assert [r.payload.top1.label for r in two] == [r.payload.top1.label for r in one]
    np.testing.assert_allclose([r.payload.top1.score for r in two], [r.payload.top1.score for r in one], rtol=1e-5)


def _max_frames_run(runtime, frames, path, *, workers: int, live: bool = False) -> tuple[list[int], object]:
    jsonl = JsonLinesSink(path)
    config = StreamConfig(workers=workers, max_frames=7, handle_signals=False)
    summary = run_stream(runtime, ListSource(frames, count=60, live=live), sinks=[jsonl], config=config)
    return [json.loads(line)["index"] for line in path.read_text().splitlines()], summary


def test_workers_stop_at_max_frames_with_every_earlier_frame_written(runtime, digits, tmp_path):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    written, summary = _max_frames_run(runtime, frames, tmp_path / "r.jsonl", workers=3)
    assert summary.frames == 7 and summary.end_reason is EndReason.MAX_FRAMES and written == list(range(7))


@pytest.mark.slow
def test_max_frames_with_workers_never_loses_a_frame_in_300_runs(runtime, digits, tmp_path):
    """The race this guards: the calling thread finished first and the shutdown dropped the frames other
    workers still had in flight (6 of 7 written, end reason 'stopped')."""
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)[:20]]
    failures = []
    for run in range(300):
        workers = 1 + run % 4
        written, summary = _max_frames_run(runtime, frames, tmp_path / f"{run}.jsonl", workers=workers)
        if written != list(range(7)) or summary.frames != 7 or summary.end_reason is not EndReason.MAX_FRAMES:
            failures.append((run, workers, written, summary.frames, summary.end_reason))
    assert failures == []


@pytest.mark.slow
def test_stop_with_workers_writes_every_frame_taken_in_order_in_100_runs(runtime, digits, tmp_path):
    """stop() mid-run: no new frame is taken, every frame already taken is written, without gaps."""
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)[:20]]
    rng = np.random.default_rng(0)
    failures = []
    for run in range(100):
        workers = 1 + run % 4
        path = tmp_path / f"{run}.jsonl"
        pipeline = StreamPipeline(runtime, ListSource(frames, count=10**6, live=run % 2 == 0),
                                  sinks=[JsonLinesSink(path)], config=StreamConfig(workers=workers, handle_signals=False))
        timer = threading.Timer(float(rng.uniform(0.01, 0.1)), pipeline.stop)
        timer.start()
        summary = pipeline.run()
        timer.join()
        written = [json.loads(line)["index"] for line in path.read_text().splitlines()]
        in_order = written == sorted(written) and len(set(written)) == len(written)
        if not in_order or len(written) != summary.frames or summary.end_reason is not EndReason.STOPPED:
            failures.append((run, workers, written, summary.frames, summary.end_reason))
        elif run % 2 == 1 and written != list(range(len(written))):  # a file drops nothing: no gaps
            failures.append((run, workers, written, summary.frames, summary.end_reason))
    assert failures == []


class _FailingFork:
    """A fork whose engine breaks on its third frame: the error must end the run, not hang it."""

    def __init__(self, runtime) -> None:  # noqa: ANN001
        self.runtime, self.calls, self.closed = runtime, 0, False

    def infer(self, batch: np.ndarray) -> np.ndarray:
        from edgevision.errors import RuntimeEngineError

        self.calls += 1
        if self.calls == 3:
            raise RuntimeEngineError("engine fell over")
        return self.runtime.infer(batch)

    def close(self) -> None:
        self.closed = True


def test_a_failing_worker_ends_the_run_with_its_error(runtime, digits, tmp_path, monkeypatch):
    from edgevision.errors import RuntimeEngineError

    forks: list[_FailingFork] = []
    monkeypatch.setattr(runtime, "fork", lambda: forks.append(_FailingFork(runtime)) or forks[-1])
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    source = ListSource(frames, count=200, live=False)
    jsonl = JsonLinesSink(tmp_path / "r.jsonl")
    with pytest.raises(RuntimeEngineError, match="fell over"):
        run_stream(runtime, source, sinks=[jsonl], config=StreamConfig(workers=2))
    assert len(forks) == 1 and forks[0].closed
    assert not source.is_open and jsonl.closed


def test_workers_below_one_is_a_config_error():
    from edgevision.errors import ConfigError

    with pytest.raises(ConfigError, match="workers"):
        StreamConfig(workers=0)
