"""Parsing and opening sources; every bad input is one clear StreamError."""

from __future__ import annotations

import numpy as np
import pytest

from edgevision.errors import EngineNotInstalledError, StreamError
from edgevision.stream import (
    CameraSource, GStreamerSource, StreamURLSource, VideoFileSource, jetson_csi_pipeline, open_source, parse_source,
)
from edgevision.stream.sources import opencv_has_gstreamer
from tests.stream.videos import FRAMES, SIZE, decode_all


@pytest.mark.parametrize(
    ("spec", "kind"),
    [(0, CameraSource), ("0", CameraSource), (" 2 ", CameraSource), ("/dev/video3", CameraSource),
     ("rtsp://cam.local/stream1", StreamURLSource), ("http://10.0.0.5:8080/video", StreamURLSource),
     ("gst:videotestsrc ! appsink", GStreamerSource)],
)
def test_specs_parse_to_the_right_source(spec, kind):
    source = parse_source(spec)
    assert type(source) is kind
    assert not source.is_open


def test_live_and_file_sources_say_so(digit_video):
    assert parse_source("0").is_live and parse_source("rtsp://h/s").is_live
    assert not parse_source(str(digit_video)).is_live


def test_url_password_never_appears_in_descriptions():
    source = parse_source("rtsp://admin:hunter2@10.0.0.9:554/live")
    assert "hunter2" not in source.description and "admin:***@10.0.0.9:554" in source.description


def test_jetson_csi_pipeline_is_a_gstreamer_source():
    pipeline = jetson_csi_pipeline(sensor_id=1, width=640, height=480, fps=60)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1") and pipeline.endswith("appsink drop=true max-buffers=1")
    assert "width=640, height=480, framerate=60/1" in pipeline
    assert type(parse_source(f"gst:{pipeline}")) is GStreamerSource


def test_video_file_reads_every_frame_then_ends(digit_video):
    with open_source(str(digit_video)) as source:
        assert isinstance(source, VideoFileSource) and source.is_open
        assert source.fps == pytest.approx(30.0)
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    assert not source.is_open
    assert len(frames) == FRAMES
    assert frames[0].shape == (SIZE[1], SIZE[0], 3) and frames[0].dtype.name == "uint8"


@pytest.mark.parametrize("spec", ["webcam", "", "ftp://example.com/video", -1])
def test_unknown_source_is_a_clear_error(spec):
    with pytest.raises(StreamError, match="Unknown source|negative") as info:
        open_source(spec)
    assert "\n" not in str(info.value)


def test_near_miss_is_suggested():
    with pytest.raises(StreamError, match="Did you mean 'picamera2'"):
        parse_source("picamra2")


def test_missing_file_says_it_does_not_exist(tmp_path):
    with pytest.raises(StreamError, match="does not exist"):
        open_source(str(tmp_path / "nope.mp4"))


def test_unreadable_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.mp4"
    bogus.write_text("this is not a video")
    with pytest.raises(StreamError, match="cannot be read as video"):
        open_source(str(bogus))


def test_camera_that_never_opens_is_a_clear_error():
    with pytest.raises(StreamError, match="Camera 97 did not open.*ls /dev/video"):
        open_source(97)


def test_unreachable_stream_is_a_clear_error():
    from edgevision.stream import CaptureOptions

    with pytest.raises(StreamError, match="did not open within 2 s"):
        open_source("rtsp://127.0.0.1:9/none", capture=CaptureOptions(timeout_s=2))


def test_gstreamer_source_explains_what_is_missing():
    source = parse_source("gst:this-element-does-not-exist ! appsink")
    expected = "did not start" if opencv_has_gstreamer() else "no GStreamer support"
    with pytest.raises(StreamError, match=expected):
        source.open()


def test_picamera2_missing_names_the_extra():
    from edgevision._optional import is_installed

    if is_installed("picamera2"):
        pytest.skip("picamera2 is installed here; this checks the message on machines without it")
    with pytest.raises(EngineNotInstalledError, match=r"edgevision\[picamera\]"):
        open_source("picamera2")


def test_empty_gst_pipeline_is_rejected():
    with pytest.raises(StreamError, match="no pipeline"):
        parse_source("gst:")


@pytest.mark.parametrize("threads", [1, 2, None])
def test_decoder_thread_count_does_not_change_the_frames(digit_video, threads):
    from edgevision.stream import CaptureOptions

    with open_source(str(digit_video), capture=CaptureOptions(decode_threads=threads)) as source:
        frames = []
        while (frame := source.read()) is not None:
            frames.append(frame)
    expected = decode_all(digit_video)
    assert len(frames) == len(expected)
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_zero_decoder_threads_is_a_config_error():
    from edgevision.errors import ConfigError
    from edgevision.stream import CaptureOptions

    with pytest.raises(ConfigError, match="decode_threads"):
        CaptureOptions(decode_threads=0)
