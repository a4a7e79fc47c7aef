"""Camera-stream recognition: sources → capture ‖ inference pipeline → task head → sinks.

    from edgevision import load_runtime
    from edgevision.stream import JsonLinesSink, StreamConfig, open_source, run_stream

    with load_runtime("bundle/") as runtime:
        summary = run_stream(runtime, open_source("0"), sinks=[JsonLinesSink("out.jsonl")])

Imports numpy and OpenCV only; no engine and no torch.
"""

from __future__ import annotations

from .heads import HEADS as HEADS
from .heads import ClassificationHead as ClassificationHead
from .heads import DetectionHead as DetectionHead
from .heads import HeadOptions as HeadOptions
from .heads import SegmentationHead as SegmentationHead
from .heads import TaskHead as TaskHead
from .metrics import EndReason as EndReason
from .metrics import LiveStats as LiveStats
from .metrics import StreamSummary as StreamSummary
from .pipeline import DropPolicy as DropPolicy
from .pipeline import ReconnectPolicy as ReconnectPolicy
from .pipeline import StreamConfig as StreamConfig
from .pipeline import StreamPipeline as StreamPipeline
from .pipeline import run_stream as run_stream
from .results import Classification as Classification
from .results import FrameMeta as FrameMeta
from .results import FrameResult as FrameResult
from .results import ObjectDetections as ObjectDetections
from .results import Payload as Payload
from .results import Prediction as Prediction
from .results import Segmentation as Segmentation
from .results import StageTimings as StageTimings
from .sinks import CallbackSink as CallbackSink
from .sinks import DisplaySink as DisplaySink
from .sinks import JsonLinesSink as JsonLinesSink
from .sinks import Sink as Sink
from .sinks import VideoSink as VideoSink
from .sinks import display_available as display_available
from .sources import CameraSource as CameraSource
from .sources import CaptureOptions as CaptureOptions
from .sources import GStreamerSource as GStreamerSource
from .sources import Source as Source
from .sources import StreamURLSource as StreamURLSource
from .sources import VideoFileSource as VideoFileSource
from .sources import jetson_csi_pipeline as jetson_csi_pipeline
from .sources import open_source as open_source
from .sources import parse_source as parse_source

__all__ = [
    "HEADS", "CallbackSink", "CameraSource", "CaptureOptions", "Classification", "ClassificationHead", "DetectionHead",
    "DisplaySink", "DropPolicy", "EndReason", "FrameMeta", "FrameResult", "GStreamerSource", "HeadOptions",
    "JsonLinesSink", "LiveStats", "ObjectDetections", "Payload", "Prediction", "ReconnectPolicy", "Segmentation",
    "SegmentationHead", "Sink", "Source", "StageTimings", "StreamConfig", "StreamPipeline", "StreamSummary",
    "StreamURLSource", "TaskHead", "VideoFileSource", "VideoSink", "display_available", "jetson_csi_pipeline",
    "open_source", "parse_source", "run_stream",
]
