"""Detection in the stream: the head follows the bundle's task, boxes reach the JSON lines and the video,
and equal what offline `Runtime.detect` finds on the same frames."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgevision.bundle import Bundle, write_manifest
from edgevision.errors import ConfigError
from edgevision.runtimes import load_runtime
from edgevision.stream import (
    ClassificationHead,
    DetectionHead,
    FrameMeta,
    FrameResult,
    HeadOptions,
    JsonLinesSink,
    ObjectDetections,
    StageTimings,
    StreamConfig,
    StreamPipeline,
    VideoSink,
    run_stream,
)
from edgevision.stream.overlay import PALETTE, draw_detections
from edgevision.tasks.detect import Detections
from tests.stream.videos import decode_all
from tests.tasks.detect_bundle import BLUE_BOX, LABELS, RED_BOX, painted_frame, write_detect_bundle

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

SCALE = 4  # 192×384 frames: big enough that mp4v keeps the colours
FRAMES = 12
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def detect_bundle(tmp_path_factory) -> Bundle:
    return write_detect_bundle(tmp_path_factory.mktemp("stream-detect") / "grid")


@pytest.fixture(scope="module")
def detect_video(tmp_path_factory) -> Path:
    """12 frames: both squares, then only red, then only blue, then none (3 frames each)."""
    path = tmp_path_factory.mktemp("det-video") / "squares.mp4"
    height, width = painted_frame(SCALE).shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for red, blue in [(True, True)] * 3 + [(True, False)] * 3 + [(False, True)] * 3 + [(False, False)] * 3:
        writer.write(painted_frame(SCALE, red=red, blue=blue))
    writer.release()
    return path


def as_classifier(bundle: Bundle, directory: Path) -> Bundle:
    import shutil

    shutil.copytree(bundle.path, directory)
    manifest = bundle.manifest.model_dump()
    manifest.update(task="classify", detection=None)
    write_manifest(directory, type(bundle.manifest).model_validate(manifest))
    return Bundle.load(directory)


def test_the_head_follows_the_bundle_task(detect_bundle, tmp_path):
    with load_runtime(detect_bundle) as runtime:
        assert isinstance(StreamPipeline(runtime, "0").head, DetectionHead)
    with load_runtime(as_classifier(detect_bundle, tmp_path / "c")) as runtime:
        assert isinstance(StreamPipeline(runtime, "0").head, ClassificationHead)
        with pytest.raises(ConfigError, match="classify model.*predict"):
            StreamPipeline(runtime, "0", config=StreamConfig(task="detection"))


def test_detection_head_gives_frame_pixels_and_honours_the_threshold(detect_bundle):
    frame = painted_frame(SCALE)
    meta = FrameMeta(index=0, captured_at=0.0, width=frame.shape[1], height=frame.shape[0])
    with load_runtime(detect_bundle) as runtime:
        raw = runtime.predict([frame])[0]
        offline = runtime.detect([frame])[0]
    payload = DetectionHead(detect_bundle.manifest)(raw, meta)
    assert isinstance(payload, ObjectDetections)
    np.testing.assert_array_equal(payload.detections.boxes, offline.boxes)
    assert dict(zip(payload.detections.label_names, payload.detections.boxes.tolist())) == {
        "red": [v * SCALE for v in RED_BOX], "blue": [v * SCALE for v in BLUE_BOX]}
    # A faint red square (116 of 255) scores ≈ 0.1: under the bundle's 0.25, over 0.05.
    faint = frame.copy()
    faint[: 24 * SCALE, 24 * SCALE : 48 * SCALE] = (0, 0, 116)
    with load_runtime(detect_bundle) as runtime:
        faint_raw = runtime.predict([faint])[0]
    assert len(DetectionHead(detect_bundle.manifest)(faint_raw, meta).detections) == 2
    low = DetectionHead(detect_bundle.manifest, HeadOptions(score_threshold=0.05))(faint_raw, meta)
    assert len(low.detections) == 3 and 0.05 < low.detections.scores.min() < 0.25
    with pytest.raises(ConfigError, match="score_threshold"):
        HeadOptions(score_threshold=1.5)


def test_payload_serialises_captions_and_draws():
    detections = Detections([[10, 20, 50, 60], [0, 0, 30, 12]], [0.9, 0.5], [0, 1], LABELS)
    payload = ObjectDetections(detections)
    result = FrameResult(index=2, captured_at=1.0, payload=payload,
                         timings=StageTimings(capture_ms=1, preprocess_ms=1, infer_ms=2, postprocess_ms=0.3),
                         latency_ms=5.0)
    line = json.loads(json.dumps(result.to_dict()))
    assert line["kind"] == "detection" and line["detections"] == [
        {"box": [10.0, 20.0, 50.0, 60.0], "score": 0.9, "class_id": 0, "label": "red"},
        {"box": [0.0, 0.0, 30.0, 12.0], "score": 0.5, "class_id": 1, "label": "blue"},
    ]
    assert payload.caption() == "1 red, 1 blue"
    assert ObjectDetections(Detections.empty(LABELS)).caption() == "no objects"
    image = np.zeros((100, 100, 3), np.uint8)
    payload.draw(image)
    assert tuple(image[40, 10]) == PALETTE[0]  # the left edge of the red-class box, in class 0's colour
    assert tuple(image[60, 30]) == PALETTE[0]  # its bottom edge
    label_area = image[0:20, 10:50]  # "red 0.90" sits above the box, white text on the class colour
    assert (label_area > 200).all(axis=2).sum() > 10
    top = np.zeros((100, 100, 3), np.uint8)
    draw_detections(top, Detections([[0, 0, 30, 12]], [0.5], [1], LABELS))  # at the top edge: label inside
    assert (top[0:12, 0:30] > 200).all(axis=2).sum() > 10


def test_a_video_stream_writes_the_boxes_offline_detect_finds(detect_bundle, detect_video, tmp_path):
    jsonl, video = tmp_path / "boxes.jsonl", tmp_path / "boxes.mp4"
    with load_runtime(detect_bundle, threads=1) as runtime:
        summary = run_stream(runtime, str(detect_video), sinks=[JsonLinesSink(jsonl), VideoSink(video)])
        offline = runtime.detect(decode_all(detect_video))
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert summary.frames == FRAMES == len(lines) and summary.latency_p50_ms > 0
    assert summary.stage_mean_ms.postprocess_ms > 0 and all(line["timings"]["postprocess_ms"] >= 0 for line in lines)
    assert [line["detections"] for line in lines] == [found.to_dicts() for found in offline]
    assert [sorted(d["label"] for d in line["detections"]) for line in lines[::3]] == [
        ["blue", "red"], ["red"], ["blue"], []]
    red = next(d["box"] for d in lines[0]["detections"] if d["label"] == "red")
    assert red == [v * SCALE for v in RED_BOX]
    annotated = decode_all(video)
    assert len(annotated) == FRAMES
    x1, _, x2, y2 = (int(v) for v in red)
    edge = annotated[0][y2 - 1, (x1 + x2) // 2].astype(int)  # the box's bottom edge, drawn in class 0's colour
    assert np.abs(edge - np.array(PALETTE[0])).max() < 60


def test_the_head_reads_the_detection_output_when_it_is_not_the_primary(tmp_path):
    bundle = write_detect_bundle(tmp_path / "two-outputs", extra_first_output=True)
    assert bundle.manifest.output_name == "means"
    frames = [painted_frame(SCALE)]
    results: list[FrameResult] = []
    from edgevision.stream import CallbackSink
    from tests.stream.memory_sources import ListSource

    with load_runtime(bundle) as runtime:
        run_stream(runtime, ListSource(frames, count=2), sinks=[CallbackSink(results.append)])
        offline = runtime.detect(frames)[0]
    assert [r.payload.detections.to_dicts() for r in results] == [offline.to_dicts()] * 2


def run_example(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / "count_objects.py"), *args], capture_output=True,
                          text=True, timeout=300, cwd=EXAMPLES.parent, check=False)


def test_count_objects_example_prints_a_table_per_second(detect_bundle, detect_video):
    done = run_example("--bundle", str(detect_bundle.path), "--source", str(detect_video))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["time", "frames", "red", "blue"]
    rows = [line.split() for line in lines[1:-1]]
    assert rows and sum(int(row[1]) for row in rows) == FRAMES  # every frame in some second
    if len(rows) == 1:  # the whole file in one second: 6 of 12 frames have each colour, at most 1 per frame
        assert rows[0][2:] == ["0.5", "(1)", "0.5", "(1)"]
    assert lines[-1].startswith(f"{FRAMES} frames via onnxruntime") and "post-processing" in lines[-1]


def test_count_objects_example_refuses_a_classifier(detect_bundle, tmp_path):
    done = run_example("--bundle", str(as_classifier(detect_bundle, tmp_path / "c").path), "--source", "0")
    assert done.returncode != 0 and "needs a detector" in done.stderr


def test_count_objects_example_is_short_and_uses_only_the_public_api():
    source = (EXAMPLES / "count_objects.py").read_text()
    assert len(source.splitlines()) <= 60
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("edgevision"):
            assert node.module in {"edgevision", "edgevision.stream", "edgevision.errors", "edgevision.runtimes"}
            assert not any(alias.name.startswith("_") for alias in node.names)


def test_the_video_file_example_runs_a_detector_too(detect_bundle, detect_video):
    done = subprocess.run([sys.executable, str(EXAMPLES / "video_file.py"), "--bundle", str(detect_bundle.path),
                           "--source", str(detect_video)], capture_output=True, text=True, timeout=300,
                          cwd=EXAMPLES.parent, check=False)
    assert done.returncode == 0, done.stderr
    printed = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("frame")]
    assert printed == ["1 red, 1 blue", "1 red", "1 blue", "no objects"]
    assert f"{FRAMES} frames via onnxruntime" in done.stdout
