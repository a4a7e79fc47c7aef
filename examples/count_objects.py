"""Count objects per class over time from a camera, video file or RTSP stream, one row a second.

    python examples/count_objects.py --bundle bundles/detector_onnx --source 0
    python examples/count_objects.py --bundle b/ --source rtsp://cam/stream --classes person,car

Each row: a second of wall-clock time (a file runs as fast as it can), the frames processed in it, and
per class the mean (max) objects per frame; boxes are decoded (threshold, NMS) on this device.
"""

from __future__ import annotations

import argparse
import time

import edgevision
from edgevision.stream import CallbackSink, FrameResult, HeadOptions, StreamConfig, run_stream


def main() -> None:
    parser = argparse.ArgumentParser(description="Count detected objects per class, per second.")
    parser.add_argument("--bundle", required=True, help="a detect bundle from `edgevision export`")
    parser.add_argument("--source", default="0", help="camera index, video file, rtsp:// URL")
    parser.add_argument("--classes", help="comma-separated labels to count (default: every label)")
    parser.add_argument("--score-threshold", type=float, help="min box score (default: the bundle's)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    manifest = edgevision.Bundle.load(args.bundle).manifest
    if manifest.task.value != "detect":
        parser.error(f"{args.bundle} is a {manifest.task.value} bundle; counting objects needs a detector.")
    labels = args.classes.split(",") if args.classes else list(manifest.labels or map(str, range(manifest.num_classes)))
    print(f"{'time':>8}  {'frames':>6}  " + "  ".join(f"{label[:12]:>12}" for label in labels))
    window, second = [], None  # one {label: count} per frame of the current second; that second

    def print_row() -> None:
        cells = [f"{sum(f.get(x, 0) for f in window) / len(window):.1f} ({max(f.get(x, 0) for f in window)})"
                 for x in labels]
        print(f"{time.strftime('%H:%M:%S', time.localtime(second)):>8}  {len(window):6d}  "
              + "  ".join(f"{c:>12}" for c in cells), flush=True)

    def count(result: FrameResult) -> None:
        nonlocal second
        now = int(result.captured_at)
        if second is not None and now != second and window:
            print_row()
            window.clear()
        second = now
        window.append(result.payload.detections.counts())

    config = StreamConfig(head=HeadOptions(score_threshold=args.score_threshold), max_frames=args.max_frames)
    with edgevision.load_runtime(args.bundle) as runtime:
        summary = run_stream(runtime, args.source, sinks=[CallbackSink(count)], config=config)
    if window:
        print_row()
    print(f"{summary.frames} frames via {runtime.name}: {summary.fps:.1f} FPS, latency p50 "
          f"{summary.latency_p50_ms:.1f} ms, post-processing {summary.stage_mean_ms.postprocess_ms:.2f} ms/frame")


if __name__ == "__main__":
    main()
