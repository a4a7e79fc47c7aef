"""Jetson: a CSI camera through GStreamer into TensorRT, falling back to ONNX Runtime without it.

    python examples/jetson_csi_camera.py --bundle bundles/resnet18_onnx_fp16
    python examples/jetson_csi_camera.py --bundle b/ --source clip.mp4   # try it without a camera

TensorRT builds an engine from the bundle's ONNX file on first use and caches it.
Needs the JetPack OpenCV (built with GStreamer) for the CSI camera.
"""

from __future__ import annotations

import argparse

import edgevision
from edgevision.errors import EdgeVisionError
from edgevision.stream import CallbackSink, StreamConfig, jetson_csi_pipeline, run_stream


def load_fastest(bundle: str) -> edgevision.runtimes.Runtime:
    """TensorRT when it is installed and works here; otherwise ONNX Runtime, saying why."""
    try:
        return edgevision.load_runtime(bundle, "tensorrt")
    except (EdgeVisionError, ImportError) as exc:
        print(f"TensorRT is not available ({exc}); falling back to onnxruntime.")
        return edgevision.load_runtime(bundle, "onnxruntime")


def main() -> None:
    parser = argparse.ArgumentParser(description="Classify a Jetson CSI camera feed.")
    parser.add_argument("--bundle", required=True, help="an ONNX bundle (TensorRT and ONNX Runtime both run it)")
    parser.add_argument("--source", default="gst:" + jetson_csi_pipeline(width=1280, height=720, fps=30),
                        help="gst:PIPELINE (default: CSI camera 0), a camera index, or a video file")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    def report(result) -> None:
        if result.index % 30 == 0:
            print(f"frame {result.index}: {result.payload.caption()}  ({result.latency_ms:.0f} ms)")

    with load_fastest(args.bundle) as runtime:
        summary = run_stream(runtime, args.source, sinks=[CallbackSink(report)],
                             config=StreamConfig(max_frames=args.max_frames))
    print(f"{summary.frames} frames via {runtime.name}: {summary.fps:.1f} FPS, {summary.dropped} dropped, "
          f"latency p50 {summary.latency_p50_ms:.1f} ms")


if __name__ == "__main__":
    main()
