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


def test_workers_stop_at_max_frames_with_every_earlier_frame_written(runtime, digits, tmp_path):
    frames = [digit_frame(d, width=160, height=120) for d in digit_images(digits.val)]
    jsonl = JsonLinesSink(tmp_path / "r.jsonl")
    config = StreamConfig(workers=3, max_frames=7)
    summary = run_stream(runtime, ListSource(frames, count=60), sinks=[jsonl], config=config)
    written = [json.loads(line)["index"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert summary.frames == 7 and summary.end_reason is EndReason.MAX_FRAMES and written == list(range(7))


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
