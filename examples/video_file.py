"""Recognise every frame of a video file with any bundle (classifier, detector or segmenter), printing each change.

    python examples/video_file.py --bundle bundles/resnet18_onnx --source clip.mp4 \
        --jsonl results.jsonl --save-video annotated.mp4 --workers 2

A file is read to its end and no frame is dropped, so the output lines up frame by frame.
Nobody waits on a file's frames, so `--workers 2` (two frames in flight) trades per-frame
latency for throughput; results still come out in frame order.
"""

from __future__ import annotations

import argparse

import edgevision
from edgevision.runtimes import runtime_name, stream_options
from edgevision.stream import CallbackSink, FrameResult, JsonLinesSink, StreamConfig, VideoSink, run_stream


def main() -> None:
    parser = argparse.ArgumentParser(description="Recognise the frames of a video file.")
    parser.add_argument("--bundle", required=True, help="bundle directory from `edgevision export`")
    parser.add_argument("--source", required=True, help="video file (mp4, avi, ...)")
    parser.add_argument("--runtime", help="engine to use (default: the bundle's own)")
    parser.add_argument("--jsonl", help="write one JSON line per frame here")
    parser.add_argument("--save-video", help="write an annotated copy here (.mp4)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument("--workers", type=int, default=1, help="frames inferred at once (default 1)")
    args = parser.parse_args()

    last_label = None

    def on_result(result: FrameResult) -> None:  # a new top label, objects per class, or set of classes in the mask
        nonlocal last_label
        payload = result.payload
        label = (payload.top1.label if payload.kind == "classification"
                 else sorted(payload.area_fractions) if payload.kind == "segmentation" else payload.caption())
        if label != last_label:
            print(f"frame {result.index:5d}: {result.payload.caption()}")
            last_label = label

    sinks = [CallbackSink(on_result)]
    if args.jsonl:
        sinks.append(JsonLinesSink(args.jsonl))
    if args.save_video:
        sinks.append(VideoSink(args.save_video))
    bundle = edgevision.Bundle.load(args.bundle)
    options = stream_options(runtime_name(bundle, args.runtime), workers=args.workers)
    config = StreamConfig(max_frames=args.max_frames, workers=args.workers)
    with edgevision.load_runtime(bundle, args.runtime, options=options) as runtime:
        summary = run_stream(runtime, args.source, sinks=sinks, config=config)
    print(f"{summary.frames} frames via {runtime.name}: {summary.fps:.1f} FPS, "
          f"latency p50 {summary.latency_p50_ms:.1f} ms, p99 {summary.latency_p99_ms:.1f} ms")


if __name__ == "__main__":
    main()
