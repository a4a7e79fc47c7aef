"""Segmentation in the stream: the head follows the bundle's task, area fractions reach the JSON lines,
the annotated video tints each class's pixels and leaves the background alone, and masks equal what
offline `Runtime.segment` finds on the same frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgevision.bundle import Bundle, write_manifest
from edgevision.cli import app
from edgevision.errors import ConfigError
from edgevision.runtimes import load_runtime
from edgevision.stream import (
    HEADS,
    CallbackSink,
    FrameMeta,
    FrameResult,
    JsonLinesSink,
    LiveStats,
    Payload,
    Segmentation,
    SegmentationHead,
    Sink,
    StageTimings,
    StreamConfig,
    StreamPipeline,
    VideoSink,
    run_stream,
)
from edgevision.stream.overlay import LEGEND_ROWS, MASK_OPACITY, MASK_PALETTE, draw_segmentation, mask_colour
from edgevision.stream.sinks import annotate
from edgevision.tasks.segment import SegmentationMask
from edgevision.types import SegmentationLayout
from tests.stream.memory_sources import ListSource
from tests.stream.videos import decode_all
from tests.tasks.segment_bundle import BLUE_BOX, LABELS, RED_BOX, expected_mask, painted_frame, write_segment_bundle

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

SCALE = 4  # 192×384 frames: big enough that mp4v keeps the colours, and the legend clear of the squares
FRAMES = 12
SHOWN = [(True, True)] * 3 + [(True, False)] * 3 + [(False, True)] * 3 + [(False, False)] * 3  # (red, blue) per frame
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RED, BLUE = mask_colour(1, 0), mask_colour(2, 0)  # the overlay colours of classes "red" and "blue"


def squares(*, red: bool = True, blue: bool = True) -> np.ndarray:
    """`painted_frame(SCALE)` on grey (still background to the model, but a tint on it would show), with the red
    and/or blue square painted over in that grey."""
    frame = painted_frame(SCALE)
    grey = expected_mask(SCALE) == 0
    for box, keep in ((RED_BOX, red), (BLUE_BOX, blue)):
        if not keep:
            x0, y0, x1, y1 = (v * SCALE for v in box)
            grey[y0:y1, x0:x1] = True
    frame[grey] = 110
    return frame


def inside(box: tuple[int, int, int, int], margin: int = 8) -> tuple[slice, slice]:
    """The rows and columns of a square in frame pixels, `margin` pixels in from its edges (mp4v blurs edges)."""
    x0, y0, x1, y1 = (v * SCALE for v in box)
    return slice(y0 + margin, y1 - margin), slice(x0 + margin, x1 - margin)


#: Grey background well away from both squares, the legend (top-left) and the FPS caption (top-right).
BACKGROUND = (slice(60, 180), slice(110, 180))


def blend(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    return cv2.addWeighted(frame, 1.0 - MASK_OPACITY, np.full_like(frame, colour), MASK_OPACITY, 0.0)


def with_task(bundle: Bundle, directory: Path, **fields: object) -> Bundle:
    """A copy of `bundle` whose manifest claims another task (the model file unchanged)."""
    shutil.copytree(bundle.path, directory)
    manifest = bundle.manifest.model_dump()
    manifest.update(fields)
    write_manifest(directory, type(bundle.manifest).model_validate(manifest))
    return Bundle.load(directory)


class AnnotatedFrames(Sink):
    """Keeps each annotated frame exactly as a video or window would get it (no codec in between)."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, result: FrameResult, frame: np.ndarray, stats: LiveStats) -> None:
        self.frames.append(annotate(frame, result, stats))


@pytest.fixture(scope="module")
def segment_bundle(tmp_path_factory) -> Bundle:
    return write_segment_bundle(tmp_path_factory.mktemp("stream-segment") / "blocks")


@pytest.fixture(scope="module")
def segment_video(tmp_path_factory) -> Path:
    """12 frames: both squares, then only red, then only blue, then none (3 frames each)."""
    path = tmp_path_factory.mktemp("seg-video") / "squares.mp4"
    height, width = painted_frame(SCALE).shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
    for red, blue in SHOWN:
        writer.write(squares(red=red, blue=blue))
    writer.release()
    return path


def test_the_head_follows_the_bundle_task(segment_bundle):
    assert HEADS.get("segmentation") is SegmentationHead
    with load_runtime(segment_bundle) as runtime:
        head = StreamPipeline(runtime, "0").head
    assert isinstance(head, SegmentationHead) and head.output_name is None  # the scores are the primary output


def test_a_head_named_for_another_task_fails_once_saying_which_fits(segment_bundle, tmp_path):
    from tests.tasks.detect_bundle import write_detect_bundle

    detector = write_detect_bundle(tmp_path / "grid")
    classifier = with_task(segment_bundle, tmp_path / "c", task="classify", segmentation=None)
    for bundle, task, own in ((detector, "detect", "detection"), (classifier, "classify", "classification")):
        with load_runtime(bundle) as runtime, pytest.raises(ConfigError) as caught:
            StreamPipeline(runtime, "0", config=StreamConfig(task="segmentation"))
        message = str(caught.value)
        assert f"is a {task} model: it has no per-pixel classes" in message and f"bundle's own, {own!r}" in message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__  # one error, not a chain
    with load_runtime(segment_bundle) as runtime, pytest.raises(ConfigError, match="segment model.*own, 'segmentation'"):
        StreamPipeline(runtime, "0", config=StreamConfig(task="detection"))


def test_the_head_maps_each_frame_size_back_to_its_own_pixels(segment_bundle):
    head = SegmentationHead(segment_bundle.manifest)
    with load_runtime(segment_bundle) as runtime:
        for scale in (SCALE, 1, SCALE):  # the second frame size gets its own letterbox; the first's is reused
            frame = painted_frame(scale)
            raw = runtime.predict([frame])[0]  # the primary output: the class scores
            payload = head(raw, FrameMeta(index=0, captured_at=0.0, width=frame.shape[1], height=frame.shape[0]))
            (offline,) = runtime.segment([frame])
            assert isinstance(payload, Segmentation)
            np.testing.assert_array_equal(payload.mask.class_ids, expected_mask(scale))
            np.testing.assert_array_equal(payload.mask.class_ids, offline.class_ids)
            assert dict(payload.area_fractions) == {"red": 0.125, "blue": 0.125}


def test_a_class_id_output_decodes_through_the_same_head(segment_bundle):
    manifest = segment_bundle.manifest
    ids_manifest = manifest.model_copy(update={
        "segmentation": manifest.segmentation.model_copy(update={"layout": SegmentationLayout.CLASS_IDS})})
    ids = np.zeros((16, 16), np.int64)
    ids[4:8, 8:12] = 1  # model-input rows 16..32, cols 32..48 → the red square of a 48×96 frame
    payload = SegmentationHead(ids_manifest)(ids, FrameMeta(index=0, captured_at=0.0, width=96, height=48))
    np.testing.assert_array_equal(payload.mask.binary("red"), expected_mask(1) == 1)
    assert dict(payload.area_fractions) == {"red": 0.125}


def test_payload_serialises_captions_and_draws():
    ids = np.zeros((120, 160), np.uint8)
    ids[60:120, 0:40] = 1  # a quarter of the height, a quarter of the width: 1/8 of the frame
    ids[90:120, 120:160] = 2  # 1/16
    payload = Segmentation(SegmentationMask(ids, LABELS, 0))
    assert isinstance(payload, Payload)
    result = FrameResult(index=2, captured_at=1.0, payload=payload,
                         timings=StageTimings(capture_ms=1, preprocess_ms=1, infer_ms=2, postprocess_ms=0.3),
                         latency_ms=5.0)
    line = json.loads(json.dumps(result.to_dict()))
    assert {k: line[k] for k in ("index", "kind", "height", "width", "area_fractions")} == {
        "index": 2, "kind": "segmentation", "height": 120, "width": 160,
        "area_fractions": {"red": 0.125, "blue": 0.0625}}
    assert "class_ids" not in json.dumps(line) and list(line["area_fractions"]) == ["red", "blue"]  # largest first
    assert payload.caption() == "red 12.5%, blue 6.2%"
    assert Segmentation(SegmentationMask(np.zeros((4, 4), np.uint8), LABELS, 0)).caption() == "background only"

    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8)
    image = frame.copy()
    payload.draw(image)
    red, blue = ids == 1, ids == 2
    np.testing.assert_array_equal(image[red], blend(frame, RED)[red])
    np.testing.assert_array_equal(image[blue], blend(frame, BLUE)[blue])
    legend = np.zeros(ids.shape, bool)
    legend[:40, :100] = True  # two legend rows, top-left, in the background
    untouched = (ids == 0) & ~legend
    np.testing.assert_array_equal(image[untouched], frame[untouched])
    assert (image[:40, :100] > 200).all(axis=2).sum() > 20  # white legend text
    assert (np.abs(image[:40, :100].astype(int) - RED).max(axis=2) == 0).sum() > 20  # red's colour swatch
    with pytest.raises(ConfigError, match="mask is 160×120 but the image is 80×60"):
        payload.draw(np.zeros((60, 80, 3), np.uint8))
    with pytest.raises(ConfigError, match="needs a SegmentationMask"):
        Segmentation(ids)  # type: ignore[arg-type]


def test_colours_skip_the_background_and_every_class_is_drawn_without_one():
    assert mask_colour(0, 0) is None and mask_colour(1, 0) == MASK_PALETTE[0] == mask_colour(0, None)
    assert mask_colour(3, 2) == MASK_PALETTE[2] and mask_colour(1, 2) == MASK_PALETTE[1]
    assert len(set(MASK_PALETTE)) == len(MASK_PALETTE)
    labels = tuple(f"c{i}" for i in range(300))  # > 255 classes: int32 ids, drawn without the 8-bit tables
    ids = (np.arange(64 * 80).reshape(64, 80) % 300).astype(np.int32)
    frame = np.full((64, 80, 3), 100, np.uint8)
    image = frame.copy()
    draw_segmentation(image, SegmentationMask(ids, labels, None), area_fractions={})
    expected = np.array([mask_colour(int(k), None) for k in ids.reshape(-1)], np.uint8).reshape(frame.shape)
    np.testing.assert_array_equal(image, cv2.addWeighted(frame, 1 - MASK_OPACITY, expected, MASK_OPACITY, 0.0))
    eight = Segmentation(SegmentationMask(np.arange(8, dtype=np.uint8).repeat(8).reshape(8, 8), labels[:8], None))
    assert eight.caption() == "c0 12.5%, c1 12.5%, c2 12.5%, +5 more"
    canvas = np.zeros((720, 960, 3), np.uint8)  # 8 stripes, c0 the background: 7 classes for a 5-line legend
    draw_segmentation(canvas, SegmentationMask(np.arange(8, dtype=np.uint8).repeat(120)[None].repeat(720, 0),
                                               labels[:8], 0))
    def rows_in(colour: tuple[int, int, int]) -> np.ndarray:
        return np.flatnonzero((canvas == colour).all(axis=2).any(axis=1))

    swatches = [rows_in(mask_colour(k, 0)) for k in range(1, 8)]  # c1..c7: the 7 object classes, equal shares
    assert all(len(rows) for rows in swatches[:LEGEND_ROWS]) and not any(len(rows) for rows in swatches[LEGEND_ROWS:])
    text = rows_in((255, 255, 255))
    assert text.max() > swatches[LEGEND_ROWS - 1].max()  # one more line under the last swatch: "+2 more"


def test_the_stream_tints_the_squares_and_leaves_the_rest(segment_bundle):
    frames = [squares(red=red, blue=blue) for red, blue in SHOWN]
    originals = [frame.copy() for frame in frames]
    annotated = AnnotatedFrames()
    results: list[FrameResult] = []
    with load_runtime(segment_bundle, threads=1) as runtime:
        run_stream(runtime, ListSource(frames), sinks=[annotated, CallbackSink(results.append)])
        offline = runtime.segment(frames)
    assert all(np.array_equal(a, b) for a, b in zip(frames, originals))  # sinks draw on copies
    assert [r.payload.to_dict() for r in results] == [{"kind": "segmentation", **m.to_dict()} for m in offline]
    for frame, drawn, (red, blue) in zip(frames, annotated.frames, SHOWN):
        for box, colour, shown in ((RED_BOX, RED, red), (BLUE_BOX, BLUE, blue)):
            area = inside(box, margin=0)
            np.testing.assert_array_equal(drawn[area], blend(frame, colour)[area] if shown else frame[area])
        np.testing.assert_array_equal(drawn[BACKGROUND], frame[BACKGROUND])


def test_a_video_stream_writes_area_fractions_and_a_tinted_video(segment_bundle, segment_video, tmp_path):
    jsonl, video = tmp_path / "masks.jsonl", tmp_path / "masks.mp4"
    with load_runtime(segment_bundle, threads=1) as runtime:
        summary = run_stream(runtime, str(segment_video), sinks=[JsonLinesSink(jsonl), VideoSink(video)])
        source = decode_all(segment_video)
        offline = runtime.segment(source)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert summary.frames == FRAMES == len(lines) and summary.stage_mean_ms.postprocess_ms > 0
    assert [line["kind"] for line in lines] == ["segmentation"] * FRAMES
    assert [{k: line[k] for k in ("height", "width", "area_fractions")} for line in lines] == [
        mask.to_dict() for mask in offline]
    assert [line["area_fractions"] for line in lines[::3]] == [
        {"red": 0.125, "blue": 0.125}, {"red": 0.125}, {"blue": 0.125}, {}]
    assert (lines[0]["height"], lines[0]["width"]) == painted_frame(SCALE).shape[:2]
    annotated = decode_all(video)
    assert len(annotated) == FRAMES
    for frame, drawn, (red, blue) in zip(source, annotated, SHOWN):
        for box, colour, shown in ((RED_BOX, RED, red), (BLUE_BOX, BLUE, blue)):
            area = inside(box)
            expected = blend(frame, colour)[area] if shown else frame[area]
            assert np.abs(drawn[area].astype(int) - expected).max() < 40
        assert np.abs(drawn[BACKGROUND].astype(int) - frame[BACKGROUND]).max() < 20


def test_a_device_without_torch_streams_and_draws_masks(segment_bundle, segment_video, tmp_path):
    from tests.blocking import run_blocked

    video = tmp_path / "no-torch.mp4"
    result = run_blocked(
        f"""
        import json, sys
        import edgevision
        from edgevision.stream import CallbackSink, VideoSink, run_stream
        shares = []
        with edgevision.load_runtime({str(segment_bundle.path)!r}, threads=1) as runtime:
            run_stream(runtime, {str(segment_video)!r}, sinks=[VideoSink({str(video)!r}),
                       CallbackSink(lambda r: shares.append(dict(r.payload.area_fractions)))])
        assert "torch" not in sys.modules
        print(json.dumps(shares[::3]))
        """,
        blocked=("torch", "torchvision"),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"red": 0.125, "blue": 0.125}, {"red": 0.125}, {"blue": 0.125}, {}]
    assert len(decode_all(video)) == FRAMES


def write_two_output_bundle(directory: Path) -> Bundle:
    """The block segmenter behind a first output of per-block means: the scores are not the primary output."""
    import torch

    from edgevision.bundle import OutputSpec
    from tests.tasks.segment_bundle import build_block_segmenter

    class WithMeans(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.segmenter = build_block_segmenter()

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.segmenter.pool(images), self.segmenter(images)

    single = write_segment_bundle(directory)
    torch.onnx.export(
        WithMeans().eval(), (torch.zeros(1, 3, 64, 64),), str(directory / "model.onnx"), dynamo=False, opset_version=17,
        input_names=["images"], output_names=["means", "scores"],
        dynamic_axes={"images": {0: "batch"}, "means": {0: "batch"}, "scores": {0: "batch"}},
    )
    means = OutputSpec(name="means", shape=(-1, 3, 16, 16), meaning="block_means")
    write_manifest(directory, single.manifest.model_copy(update={"outputs": (means, *single.manifest.outputs)}))
    return Bundle.load(directory)


def test_the_head_reads_the_mask_output_when_it_is_not_the_primary(tmp_path):
    bundle = write_two_output_bundle(tmp_path / "two-outputs")
    assert bundle.manifest.output_name == "means"
    frames = [painted_frame(SCALE)]
    results: list[FrameResult] = []
    with load_runtime(bundle) as runtime:
        assert SegmentationHead(bundle.manifest).output_name == "scores"
        run_stream(runtime, ListSource(frames, count=2), sinks=[CallbackSink(results.append)])
    assert [r.payload.to_dict()["area_fractions"] for r in results] == [{"red": 0.125, "blue": 0.125}] * 2
    np.testing.assert_array_equal(results[1].payload.mask.class_ids, expected_mask(SCALE))


def test_edgevision_run_streams_a_segmenter_unchanged(segment_bundle, segment_video, tmp_path):
    jsonl, video = tmp_path / "r.jsonl", tmp_path / "a.mp4"
    result = CliRunner().invoke(app, ["run", str(segment_bundle.path), "--source", str(segment_video), "--jsonl",
                                      str(jsonl), "--save-video", str(video), "--threads", "1", "--no-display"])
    assert result.exit_code == 0, result.output
    assert f"{FRAMES} processed, 0 dropped" in result.output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["area_fractions"] for line in lines[::3]] == [
        {"red": 0.125, "blue": 0.125}, {"red": 0.125}, {"blue": 0.125}, {}]
    assert len(decode_all(video)) == FRAMES


def test_the_video_file_example_runs_a_segmenter_too(segment_bundle, segment_video):
    done = subprocess.run([sys.executable, str(EXAMPLES / "video_file.py"), "--bundle", str(segment_bundle.path),
                           "--source", str(segment_video)], capture_output=True, text=True, timeout=300,
                          cwd=EXAMPLES.parent, check=False)
    assert done.returncode == 0, done.stderr
    printed = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("frame")]
    assert printed == ["red 12.5%, blue 12.5%", "red 12.5%", "blue 12.5%", "background only"]
    assert f"{FRAMES} frames via onnxruntime" in done.stdout
