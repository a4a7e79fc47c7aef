"""`edgevision run BUNDLE --source SRC`: recognise a camera stream or video live, then summarise."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from .outputs import removes_outputs_on_failure

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..stream import FrameResult, LiveStats, StreamSummary

SOURCE_HELP = "Camera index (0), video file, rtsp:// or http:// URL, gst:PIPELINE (Jetson CSI), or picamera2."


def register(app: typer.Typer) -> None:
    app.command("run")(removes_outputs_on_failure("jsonl", "save_video")(run_command))


def run_command(
    bundle: Path = typer.Argument(..., help="Bundle directory (holds edgevision.json)."),
    source: str = typer.Option(..., "--source", "-s", help=SOURCE_HELP),
    runtime: str | None = typer.Option(None, "--runtime", "-r", help="Engine to run on (default: the bundle's own)."),
    device: str | None = typer.Option(
        None, "--device", "-d", help="'auto' or a device profile name: picks the runtime and threads."
    ),
    threads: int | None = typer.Option(None, "--threads", "-t", min=1, help="Engine threads (default: the engine's)."),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1,
        help="Frames inferred at once, sharing the engine threads: more throughput, more latency per frame.",
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="Labels kept per frame (classifiers)."),
    score_threshold: float = typer.Option(
        None, "--score-threshold", min=0.0, max=1.0, help="Detectors: keep objects scoring at least this (default: the bundle's)."
    ),
    jsonl: Path | None = typer.Option(None, "--jsonl", help="Write one JSON line per frame to this file."),
    save_video: Path | None = typer.Option(None, "--save-video", help="Write an annotated .mp4 (mp4v) here."),
    max_frames: int | None = typer.Option(None, "--max-frames", "-n", min=1, help="Stop after this many frames."),
    display: bool | None = typer.Option(
        None, "--display/--no-display", help="Show a window (default: when a display exists; never headless)."
    ),
) -> None:
    """Run a bundle on a live camera or video: live FPS/latency, optional JSON lines and annotated video."""
    from ..bundle import Bundle
    from ..runtimes import load_runtime
    from ..runtimes import runtime_name as resolve_runtime
    from ..runtimes import stream_options
    from ..stream import (
        CallbackSink, DisplaySink, EndReason, HeadOptions, JsonLinesSink, Sink, StreamConfig, StreamPipeline, VideoSink,
        display_available, parse_source,
    )
    from .console import console, err_console

    loaded = Bundle.load(bundle)
    runtime_name, threads = _pick_engine(loaded, runtime, device, threads)
    stream_source = parse_source(source)  # a typo fails here, before an engine loads
    if display is None:
        display = display_available()
    elif display and not display_available():
        err_console.print("[yellow]note:[/] no display here (headless or OpenCV without GUI); not showing a window.")
        display = False
    status = _StatusLine()
    config = StreamConfig(head=HeadOptions(top_k=top_k, score_threshold=score_threshold), max_frames=max_frames, workers=workers)
    options = stream_options(resolve_runtime(loaded, runtime_name), threads, workers)
    with _log_to(err_console), load_runtime(loaded, runtime_name, options=options) as engine:
        sinks: list[Sink] = []
        if jsonl is not None:
            sinks.append(JsonLinesSink(jsonl))
        if save_video is not None:
            sinks.append(VideoSink(save_video))
        if display:
            sinks.append(DisplaySink(f"edgevision: {loaded.manifest.name}"))
        # The status line reads the pipeline's live metrics; the lambda runs only once frames flow.
        sinks.append(CallbackSink(lambda result: status.update(result, pipeline.metrics.live())))
        pipeline = StreamPipeline(engine, stream_source, sinks=sinks, config=config)
        from rich.live import Live

        with Live(status.text, console=console, refresh_per_second=4, transient=True) as live:
            status.live = live
            summary = pipeline.run()
        engine_text = engine.name if workers == 1 else f"{engine.name}, {workers} workers (frames in flight)"
        console.print(_summary_table(summary, engine_text, jsonl, save_video))
    if summary.end_reason is EndReason.SOURCE_LOST:
        err_console.print(f"[bold red]error:[/] lost {summary.source} and could not reopen it.")
        raise typer.Exit(1)


def _pick_engine(
    bundle: Bundle, runtime: str | None, device: str | None, threads: int | None
) -> tuple[str | None, int | None]:
    """(runtime, threads): explicit flags win; then the device profile's choice; else the bundle's default."""
    if device is None:
        return runtime, threads
    from ..devices import choose_runtime, resolve_device
    from .console import console

    profile, reasons = resolve_device(device)
    chosen = runtime or choose_runtime(profile, bundle.manifest.format)
    threads = threads if threads is not None else profile.threads
    how = "as asked with --runtime" if runtime else "the profile's first installed runtime for this bundle"
    console.print(f"device [bold]{profile.name}[/] ({'; '.join(reasons)}): runtime {chosen} ({how}), "
                  f"threads {threads or 'engine default'}", highlight=False)
    return chosen, threads


class _StatusLine:
    """Refreshes the live status line at most four times a second."""

    def __init__(self) -> None:
        from rich.text import Text

        self.text = Text("waiting for the first frame…")
        self.live: Any = None
        self._last = 0.0

    def update(self, result: FrameResult, stats: LiveStats) -> None:
        now = time.monotonic()
        if now - self._last < 0.25 or self.live is None:
            return
        self._last = now
        self.text.plain = (
            f"frame {result.index}  {stats.fps:5.1f} FPS  latency p50 {stats.latency_p50_ms:.1f} ms "
            f"p90 {stats.latency_p90_ms:.1f} ms  infer {stats.stage_ms.infer_ms:.1f} ms  dropped {stats.dropped}  "
            f"reconnects {stats.reconnects}  │ {result.payload.caption()}"
        )
        self.live.update(self.text)


def _summary_table(summary: StreamSummary, runtime: str, jsonl: Path | None, video: Path | None) -> Any:
    from rich.table import Table

    table = Table(title="stream summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    stages = summary.stage_mean_ms
    rows = [
        ("source", summary.source),
        ("runtime", runtime),
        ("frames", f"{summary.frames} processed, {summary.dropped} dropped, {summary.captured} captured"),
        ("throughput", f"{summary.fps:.1f} FPS end to end over {summary.duration_s:.2f} s"),
        ("latency", f"p50 {summary.latency_p50_ms:.1f} ms, p90 {summary.latency_p90_ms:.1f} ms, "
                    f"p99 {summary.latency_p99_ms:.1f} ms (capture → result)"),
        ("stages (mean)", f"capture {stages.capture_ms:.2f} ms, preprocess {stages.preprocess_ms:.2f} ms, "
                          f"infer {stages.infer_ms:.2f} ms, postprocess {stages.postprocess_ms:.2f} ms"),
        ("reconnects", str(summary.reconnects)),
        ("ended by", summary.end_reason.value),
    ]
    rows += [("results", str(jsonl))] if jsonl else []
    rows += [("video", str(video))] if video else []
    for key, value in rows:
        table.add_row(key, value)
    return table


@contextlib.contextmanager
def _log_to(console: Any) -> Iterator[None]:
    """Show edgevision's warnings (reconnects, a lost source) on stderr for the duration of a run."""
    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_time=False, show_path=False, level=logging.INFO)
    logger = logging.getLogger("edgevision")
    previous = logger.level
    logger.addHandler(handler)
    if previous == logging.NOTSET or previous > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
