"""Raspberry Pi: classify the camera feed with TFLite (or ONNX Runtime), on all four cores.

    python examples/raspberry_pi_camera.py --bundle bundles/mobilenet_tflite_int8
    python examples/raspberry_pi_camera.py --bundle b/ --source 0          # a USB webcam (V4L2)
    python examples/raspberry_pi_camera.py --bundle b/ --source clip.mp4   # try it without a camera

The Pi camera module is read through picamera2 when it is installed (apt install python3-picamera2).
"""

from __future__ import annotations

import argparse
import importlib.util

import edgevision
from edgevision.runtimes import stream_options
from edgevision.stream import CallbackSink, CaptureOptions, StreamConfig, open_source, run_stream


def main() -> None:
    has_picamera = importlib.util.find_spec("picamera2") is not None
    parser = argparse.ArgumentParser(description="Classify a Raspberry Pi camera feed.")
    parser.add_argument("--bundle", required=True, help="a TFLite bundle (or ONNX, run by ONNX Runtime)")
    parser.add_argument("--source", default="picamera2" if has_picamera else "0",
                        help="picamera2, a V4L2 camera index, or a video file")
    parser.add_argument("--threads", type=int, default=4, help="engine threads (a Pi 4/5 has 4 cores)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    bundle = edgevision.Bundle.load(args.bundle)
    runtime_name = "tflite" if bundle.manifest.format is edgevision.Format.TFLITE else "onnxruntime"
    # 640×480 is plenty for a classifier and keeps the capture cheap on a Pi.
    source = open_source(args.source, capture=CaptureOptions(width=640, height=480, fps=30))

    def report(result) -> None:
        if result.index % 30 == 0:  # about once a second at 30 FPS
            print(f"frame {result.index}: {result.payload.caption()}  ({result.latency_ms:.0f} ms)")

    # stream_options: engine threads that yield the cores to capture when idle (no spinning).
    with edgevision.load_runtime(bundle, runtime_name, options=stream_options(runtime_name, args.threads)) as runtime:
        summary = run_stream(runtime, source, sinks=[CallbackSink(report)],
                             config=StreamConfig(max_frames=args.max_frames))
    print(f"{summary.frames} frames via {runtime_name} from {summary.source}: {summary.fps:.1f} FPS, "
          f"{summary.dropped} dropped, latency p50 {summary.latency_p50_ms:.1f} ms")


if __name__ == "__main__":
    main()
