"""Task heads, result validation and metrics; a new task (boxes) drops in without pipeline changes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pytest

from edgevision.errors import ConfigError, UnknownNameError
from edgevision.runtimes import load_runtime
from edgevision.stream import (
    HEADS, Classification, ClassificationHead, EndReason, FrameMeta, FrameResult, HeadOptions, JsonLinesSink,
    Prediction, StageTimings, StreamConfig, StreamSummary, TaskHead, VideoSink, run_stream,
)
from edgevision.stream.metrics import Reservoir, StreamMetrics
from tests.stream.videos import FRAMES, decode_all

META = FrameMeta(index=0, captured_at=0.0, width=64, height=48)
TIMINGS = StageTimings(capture_ms=1, preprocess_ms=1, infer_ms=2, postprocess_ms=0.1)


def test_classification_head_is_softmax_top_k(onnx_bundle):
    head = ClassificationHead(onnx_bundle.manifest, HeadOptions(top_k=3))
    logits = np.array([0.0, 3.0, 1.0, 2.0, 0, 0, 0, 0, 0, 0], dtype=np.float32)
    payload = head(logits, META)
    probs = np.exp(logits) / np.exp(logits).sum()
    assert [p.label for p in payload.top_k] == ["1", "3", "2"]
    np.testing.assert_allclose([p.score for p in payload.top_k], [probs[1], probs[3], probs[2]], rtol=1e-6)
    assert payload.caption() == f"1 {probs[1]:.0%}"


def test_top_k_larger_than_the_label_count_keeps_every_label(onnx_bundle):
    payload = ClassificationHead(onnx_bundle.manifest, HeadOptions(top_k=50))(np.zeros(10), META)
    assert len(payload.top_k) == 10


def test_head_rejects_outputs_that_do_not_match_the_labels(onnx_bundle):
    with pytest.raises(ConfigError, match="gave 7 outputs.*10 labels"):
        ClassificationHead(onnx_bundle.manifest)(np.zeros(7), META)


def test_unknown_task_suggests_the_near_miss(onnx_bundle):
    with pytest.raises(UnknownNameError, match="Did you mean 'classification'"):
        run_stream(load_runtime(onnx_bundle), "0", config=StreamConfig(task="clasification"))


def test_invalid_results_are_rejected():
    with pytest.raises(ConfigError, match="probability"):
        Prediction("cat", 1.5)
    with pytest.raises(ConfigError, match="sorted best first"):
        Classification(top_k=(Prediction("a", 0.2), Prediction("b", 0.7)))
    with pytest.raises(ConfigError, match="infer_ms"):
        StageTimings(capture_ms=1, preprocess_ms=1, infer_ms=-1, postprocess_ms=0)
    with pytest.raises(ConfigError, match="exceed"):
        StreamSummary(source="s", frames=5, captured=4, dropped=0, reconnects=0, duration_s=1, fps=5,
                      latency_p50_ms=1, latency_p90_ms=2, latency_p99_ms=3, stage_mean_ms=TIMINGS,
                      end_reason=EndReason.END_OF_FILE)
    with pytest.raises(ConfigError, match="top_k"):
        HeadOptions(top_k=0)


def test_result_serialises_to_plain_json():
    result = FrameResult(index=3, captured_at=1.5, payload=Classification(top_k=(Prediction("7", 0.9),)),
                         timings=TIMINGS, latency_ms=4.0)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["index"] == 3 and data["top_k"] == [{"label": "7", "score": 0.9}] and data["latency_ms"] == 4.0


def test_reservoir_is_exact_when_small_and_bounded_when_large():
    small = Reservoir(100)
    for v in range(1, 101):
        small.add(float(v))
    assert small.percentiles((50, 99)) == pytest.approx((50.5, 99.01))
    big = Reservoir(64)
    for v in range(100_000):
        big.add(float(v))
    assert len(big._values) == 64 and big.seen == 100_000
    assert 20_000 < big.percentiles((50,))[0] < 80_000  # a uniform sample, not the first or last 64


def test_live_fps_counts_only_the_recent_window():
    metrics = StreamMetrics(window_s=1.0)
    payload = Classification(top_k=(Prediction("0", 1.0),))
    for i in range(30):  # 10 FPS for 3 s
        at = i * 0.1
        metrics.record_capture(at)
        metrics.record_result(FrameResult(index=i, captured_at=at, payload=payload, timings=TIMINGS,
                                          latency_ms=5.0 + i), at)
    stats = metrics.snapshot(now=2.9)
    assert stats.fps == pytest.approx(10.0) and stats.frames == 30
    assert stats.latency_p50_ms > 25  # only recent (slower) frames count
    summary = metrics.summary(source="s", end_reason=EndReason.END_OF_FILE)
    assert summary.fps == pytest.approx(30 / 2.9) and summary.latency_p50_ms == pytest.approx(19.5)


# -- a second task through the same pipeline and sinks -------------------------------------------
@dataclass(frozen=True)
class Boxes:
    boxes: tuple[tuple[int, int, int, int, str, float], ...]
    kind: str = field(default="detection", init=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "boxes": [{"xyxy": list(b[:4]), "label": b[4], "score": b[5]} for b in self.boxes]}

    def caption(self) -> str:
        return f"{len(self.boxes)} objects"

    def draw(self, image: np.ndarray) -> None:
        for x0, y0, x1, y1, _, _ in self.boxes:
            cv2.rectangle(image, (x0, y0), (x1, y1), (0, 0, 255), thickness=6)


class CentreBoxHead(TaskHead):
    """A stand-in detection head: one box in the frame's centre, labelled with the top class."""

    name = "test-centre-box"

    def __call__(self, outputs: np.ndarray, meta: FrameMeta) -> Boxes:
        best = int(np.argmax(outputs))
        w, h = meta.width, meta.height
        return Boxes(((w // 4, h // 4, 3 * w // 4, 3 * h // 4, self.manifest.labels[best], 1.0),))


def test_a_new_task_head_drops_in(onnx_bundle, digit_video, tmp_path):
    HEADS.register("test-centre-box", f"{__name__}:CentreBoxHead")
    jsonl, video = tmp_path / "boxes.jsonl", tmp_path / "boxes.mp4"
    with load_runtime(onnx_bundle, threads=1) as runtime:
        summary = run_stream(runtime, str(digit_video), sinks=[JsonLinesSink(jsonl), VideoSink(video)],
                             config=StreamConfig(task="test-centre-box"))
    assert summary.frames == FRAMES
    first = json.loads(jsonl.read_text().splitlines()[0])
    assert first["kind"] == "detection" and first["boxes"][0]["xyxy"] == [160, 120, 480, 360]
    frame = decode_all(video)[0]
    blue, green, red = frame[120, 320].astype(int)  # on the top edge of the box
    assert red > 150 and blue < 100 and green < 100
