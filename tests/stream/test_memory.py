"""A long run keeps memory flat: nothing per frame is retained by the pipeline or its metrics."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from edgevision.runtimes import load_runtime
from edgevision.stream import CallbackSink, StreamConfig, run_stream
from tests.stream.memory_sources import ListSource

#: Allowed growth of Python-tracked memory between frame 100 and frame 1,000. Expected: ~30 KB
#: (the latency reservoir's 900 floats). Retaining each 120×160 frame would add ~52 MB and each
#: result ~0.5 MB, so this catches either leak.
MAX_GROWTH_BYTES = 256 * 1024


def test_thousand_frames_do_not_grow_memory(onnx_bundle):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(8)]
    source = ListSource(frames, count=1000, live=False)
    traced: dict[int, int] = {}

    def measure(result) -> None:
        if result.index in (100, 999):
            gc.collect()  # also empties CPython's free lists, which hold recently freed small objects
            traced[result.index] = tracemalloc.get_traced_memory()[0]

    with load_runtime(onnx_bundle, threads=1) as runtime:
        tracemalloc.start()
        try:
            summary = run_stream(runtime, source, sinks=[CallbackSink(measure)], config=StreamConfig())
        finally:
            tracemalloc.stop()
    assert summary.frames == 1000 and summary.dropped == 0
    growth = traced[999] - traced[100]
    assert growth < MAX_GROWTH_BYTES, f"memory grew {growth / 1024:.0f} KiB over 900 frames"
