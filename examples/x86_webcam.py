"""x86 PC or NUC: a USB webcam into OpenVINO, in a window when there is a screen.

    python examples/x86_webcam.py --bundle bundles/resnet18_openvino_int8
    python examples/x86_webcam.py --bundle b/ --source clip.mp4 --no-window   # headless

OpenVINO runs OpenVINO bundles (`edgevision export --format openvino`); any other bundle runs
on its own engine, and the script says so. Press q in the window to stop.
"""

from __future__ import annotations

import argparse

import edgevision
from edgevision.stream import CallbackSink, DisplaySink, StreamConfig, display_available, run_stream


def main() -> None:
    parser = argparse.ArgumentParser(description="Classify a webcam feed with OpenVINO.")
    parser.add_argument("--bundle", required=True, help="an OpenVINO bundle")
    parser.add_argument("--source", default="0", help="camera index, video file or rtsp:// URL")
    parser.add_argument("--threads", type=int, help="CPU threads for OpenVINO (default: all)")
    parser.add_argument("--no-window", action="store_true", help="never open a window")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    bundle = edgevision.Bundle.load(args.bundle)
    runtime_name = "openvino"
    if bundle.manifest.format is not edgevision.Format.OPENVINO:
        runtime_name = None  # the bundle's own engine
        print(f"{args.bundle} holds a {bundle.manifest.format.value} model, not OpenVINO IR: using its own engine.")

    def report(result) -> None:
        if result.index % 30 == 0:
            print(f"frame {result.index}: {result.payload.caption()}  ({result.latency_ms:.0f} ms)")

    sinks = [CallbackSink(report)]
    if not args.no_window and display_available():
        sinks.append(DisplaySink("edgevision: x86 webcam"))
    with edgevision.load_runtime(bundle, runtime_name, threads=args.threads) as runtime:
        summary = run_stream(runtime, args.source, sinks=sinks, config=StreamConfig(max_frames=args.max_frames))
    print(f"{summary.frames} frames via {runtime.name}: {summary.fps:.1f} FPS, {summary.dropped} dropped, "
          f"latency p50 {summary.latency_p50_ms:.1f} ms")


if __name__ == "__main__":
    main()
