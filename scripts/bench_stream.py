"""How close does the stream pipeline come to the engine's own speed?

Measures, for one bundle on this machine:
  raw     runtime.infer on one preprocessed 640×480 frame in a loop (the engine alone; with
          --workers N, N threads each inferring on its own fork, as the stream runs them)
  capture decode + preprocess of every frame of the video, no inference (the feed's own ceiling)
  stream  run_stream on a 640×480 video: decode + preprocess + infer + head, end to end
and prints stream / raw (target >= 0.9: capture and preprocessing hide behind inference).
No pipeline can beat the slower of raw and capture, so a model that infers faster than a frame
decodes is capped by capture. Alternates the runs `--repeats` times: stream / raw is the median of
each repeat's own stream / raw (the two run back to back), with its spread; FPS are medians.

    python scripts/bench_stream.py --bundle bundles/onnx-fp32 --out stream_bench.json
    python scripts/bench_stream.py --bundle bundles/openvino-fp32 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

import edgevision
from edgevision.bench.paired import RatioStats
from edgevision.bundle import Bundle
from edgevision.preprocess import preprocess_batch
from edgevision.runtimes import runtime_name, stream_options
from edgevision.stream import StreamConfig, VideoFileSource, run_stream
from edgevision.stream.pipeline import limit_opencv_threads

WIDTH, HEIGHT = 640, 480


def write_video(path: Path, frames: int) -> Path:
    """A 640×480 mp4v clip of moving shapes: real decode work, no data set needed."""
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (WIDTH, HEIGHT))
    for i in range(frames):
        frame = np.roll(background, 8 * i, axis=1)
        cv2.circle(frame, (40 + (i * 7) % (WIDTH - 80), HEIGHT // 2), 60, (0, 0, 0), thickness=-1)
        writer.write(frame)
    writer.release()
    return path


def raw_fps(runtime: edgevision.runtimes.Runtime, video: Path, iterations: int, workers: int = 1) -> float:
    """Frames per second of the engine alone: `workers` threads, each inferring on its own fork."""
    capture = cv2.VideoCapture(str(video))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read {video}")
    batch = preprocess_batch([frame], runtime.bundle.manifest.preprocess, runtime.input_spec)
    forks = [runtime.fork() for _ in range(workers - 1)]
    handles = [runtime, *forks]
    share = iterations // workers

    def loop(handle: edgevision.runtimes.Runtime, count: int) -> None:
        for _ in range(count):
            handle.infer(batch)

    try:
        for handle in handles:
            loop(handle, 20)
        threads = [threading.Thread(target=loop, args=(handle, share)) for handle in handles]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return share * workers / (time.perf_counter() - start)
    finally:
        for fork in forks:
            fork.close()


def cpu_seconds(before: os.times_result, after: os.times_result) -> float:
    """CPU seconds (user + system) this process used between two os.times() readings."""
    return after.user - before.user + after.system - before.system


def capture_fps(runtime: edgevision.runtimes.Runtime, video: Path) -> tuple[float, float]:
    """(frames per second, CPU ms per frame) of the capture side alone: the pipeline's capture thread's work."""
    manifest, input_spec = runtime.bundle.manifest, runtime.input_spec
    frames = 0
    # OpenCV's thread count as run_stream sets it for its capture thread.
    with limit_opencv_threads(StreamConfig().opencv_threads), VideoFileSource(video) as source:
        source.open()
        before, start = os.times(), time.perf_counter()
        while (frame := source.read()) is not None:
            preprocess_batch([frame], manifest.preprocess, input_spec)
            frames += 1
        elapsed, after = time.perf_counter() - start, os.times()
    return frames / elapsed, cpu_seconds(before, after) * 1e3 / frames


def open_runtime(bundle: Path, name: str | None, threads: int | None, workers: int = 1) -> edgevision.runtimes.Runtime:
    """The runtime as `edgevision run` opens it for a stream (stream_options: no spinning threads)."""
    loaded = Bundle.load(bundle)
    options = stream_options(runtime_name(loaded, name), threads, workers)
    return edgevision.load_runtime(loaded, name, options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description="Stream FPS vs raw engine FPS for one bundle.")
    parser.add_argument("--bundle", required=True, type=Path)
    parser.add_argument("--runtime", help="engine (default: the bundle's own)")
    parser.add_argument("--threads", type=int, help="engine threads (default: the engine's)")
    parser.add_argument("--workers", type=int, default=1, help="frames inferred at once (StreamConfig.workers)")
    parser.add_argument("--frames", type=int, default=300, help="frames in the generated video")
    parser.add_argument("--video", type=Path, help="use this 640×480 video instead of generating one")
    parser.add_argument("--repeats", type=int, default=3, help="alternating raw/stream runs; medians are reported")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    runtime = open_runtime(args.bundle, args.runtime, args.threads, args.workers)
    with tempfile.TemporaryDirectory() as tmp, runtime:
        video = args.video or write_video(Path(tmp) / "bench.mp4", args.frames)
        raws, captures, capture_cpus, streams, summaries, cores = [], [], [], [], [], []
        for _ in range(args.repeats):
            raws.append(raw_fps(runtime, video, args.frames, args.workers))
            fps, cpu_ms = capture_fps(runtime, video)
            captures.append(fps)
            capture_cpus.append(cpu_ms)
            before, start = os.times(), time.perf_counter()
            summary = run_stream(runtime, str(video), config=StreamConfig(handle_signals=False, workers=args.workers))
            after, wall = os.times(), time.perf_counter() - start
            cores.append(cpu_seconds(before, after) / wall)
            streams.append(summary.fps)
            summaries.append(summary)
        raw, stream, capture = statistics.median(raws), statistics.median(streams), statistics.median(captures)
        capture_cpu_ms = statistics.median(capture_cpus)
        # A repeat runs raw, capture and stream one after another: pair raw and stream within it.
        paired = RatioStats.from_times(streams, raws)
        # The engine keeps every core busy while it infers, so each frame also needs its capture CPU
        # time spread over all cores: infer + capture_cpu / cores is the shortest possible frame time.
        infer_ms, cpus = 1000 / raw, os.cpu_count() or 1
        shared_cpu_bound = infer_ms / (infer_ms + capture_cpu_ms / cpus)
        median_summary = summaries[streams.index(stream)] if stream in streams else summaries[-1]
        result = {
            "bundle": str(args.bundle), "format": runtime.bundle.manifest.format.value,
            "input": list(runtime.input_spec.shape), "runtime": runtime.name, "threads": args.threads,
            "workers": args.workers,
            "video": {"width": WIDTH, "height": HEIGHT, "frames": median_summary.frames,
                      "kb_per_frame": round(video.stat().st_size / 1024 / median_summary.frames, 1)},
            "raw_fps": round(raw, 2), "capture_fps": round(capture, 2), "stream_fps": round(stream, 2),
            "capture_cpu_ms": round(capture_cpu_ms, 3), "shared_cpu_bound": round(shared_cpu_bound, 3),
            "ratio": round(paired.median, 3), "ratio_spread": paired.to_dict(),
            "ratio_to_ceiling": round(stream / min(raw, capture), 3),
            "raw_fps_runs": [round(v, 2) for v in raws], "capture_fps_runs": [round(v, 2) for v in captures],
            "stream_fps_runs": [round(v, 2) for v in streams],
            "stream_summary": median_summary.to_dict(),
            # CPU seconds per wall second during the stream runs: ~1 means the process got one core.
            "stream_cpu_cores_used": [round(c, 2) for c in cores],
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_avg": list(os.getloadavg())},
        }
    print(f"{runtime.name} on {args.bundle} (input {result['input']}, {args.workers} worker(s)):")
    print(f"  raw inference  {raw:8.1f} FPS  ({1000 / raw:.2f} ms per frame)")
    print(f"  capture alone  {capture:8.1f} FPS  (640×480 decode + preprocess, no inference; "
          f"{capture_cpu_ms:.2f} CPU ms a frame)")
    print(f"  stream         {stream:8.1f} FPS  (640×480 video, decode + preprocess + infer + head)")
    print(f"  stream / raw   {paired.median:8.3f}  (median of per-repeat ratios, "
          f"range {paired.min:.3f}–{paired.max:.3f}; target >= 0.9)")
    print(f"  stream / min(raw, capture) {stream / min(raw, capture):.3f}; shared-CPU bound on stream / raw "
          f"{shared_cpu_bound:.3f}")
    print(f"  CPU cores the stream got: {statistics.median(cores):.2f} of {os.cpu_count()} "
          f"(load average {os.getloadavg()[0]:.1f})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
