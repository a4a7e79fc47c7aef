"""Measure one benchmark row. Runs in a fresh process so peak RSS belongs to that engine alone."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Bundle
from ..runtimes import RUNTIMES, RuntimeOptions, load_runtime
from .result import BenchResult, LatencyStats
from .task_metrics import TaskMeasurement, measure_task


@dataclass(frozen=True)
class RowJob:
    bundle: str
    runtime: str
    threads: int | None
    batch_size: int
    warmup: int
    iterations: int
    data: str | None
    max_images: int | None
    # Compile for exactly `batch_size` where the engine can (OpenVINO `reshape`): the batch is fixed here.
    static_shape: bool = True


def run_row(job: RowJob, tick=None) -> BenchResult:  # noqa: ANN001 - tick: callable(str, int)
    """Load, warm up, time `iterations` calls, then measure accuracy through the engine."""
    bundle = Bundle.load(job.bundle)
    with load_runtime(bundle, job.runtime, options=row_options(job)) as engine:
        shape = (job.batch_size, *engine.input_spec.shape[1:])
        batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        for _ in range(job.warmup):
            engine.infer(batch)
        samples = []
        for i in range(job.iterations):
            start = time.perf_counter()
            engine.infer(batch)
            samples.append((time.perf_counter() - start) * 1000.0)
            if tick and (i + 1) % 10 == 0:
                tick("timing", 10)
        measured = measure_task(engine, job.data, max_images=job.max_images, tick=tick) if job.data else None
        engine_precision = engine.engine_precision
        detail = engine.precision_report.to_dict()
        engine_config = dict(engine.engine_config)
    stats = LatencyStats.from_samples(samples)
    return BenchResult(
        name=Path(job.bundle).name, bundle=str(job.bundle), format=bundle.manifest.format.value,
        precision=bundle.manifest.precision.value, runtime=job.runtime, engine_precision=engine_precision,
        threads=job.threads, batch_size=job.batch_size, latency=stats,
        throughput_ips=1000.0 * job.batch_size / stats.mean_ms, peak_rss_mb=peak_rss_mb(),
        size_mb=bundle.size_bytes / 1e6, engine_config=engine_config, engine_precision_detail=detail, samples_ms=samples,
        task=bundle.manifest.task.value, **_measured_fields(measured),
    )


def _measured_fields(measured: TaskMeasurement | None) -> dict:
    if measured is None:
        return {}
    stats = {
        key: LatencyStats.from_samples(samples)
        for key, samples in (("postprocess", measured.postprocess_ms), ("end_to_end", measured.end_to_end_ms))
        if samples
    }
    return {"accuracy": measured.value, "accuracy_images": measured.images, "metric": measured.name,
            "metrics": dict(measured.extras), **stats}


def row_options(job: RowJob) -> RuntimeOptions:
    """The runtime's options for this row: its threads, and a static batch where the engine takes one."""
    from dataclasses import fields

    options_type = RUNTIMES.get(job.runtime).options_type
    settings: dict[str, object] = {}
    if job.static_shape and "static_batch" in {f.name for f in fields(options_type)}:
        bundle_batch = Bundle.load(job.bundle).manifest.input.shape[0]
        if bundle_batch in (-1, job.batch_size):
            settings["static_batch"] = job.batch_size
    return options_type(threads=job.threads, **settings)


def peak_rss_mb() -> float:
    """Peak resident memory of this process. VmHWM, unlike ru_maxrss, is not inherited from the parent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def result_from_dict(data: dict) -> BenchResult:
    """Rebuild a BenchResult sent from a worker process as JSON."""
    data = dict(data)
    for key in ("latency", "postprocess", "end_to_end"):
        if data.get(key) is not None:
            data[key] = LatencyStats(**data[key])
    return BenchResult(**data)


def main() -> None:
    """Worker process: read a RowJob as JSON on stdin; write JSON lines (ticks, then the result)."""
    import json
    import sys

    job = RowJob(**json.loads(sys.stdin.read()))
    out = sys.stdout

    def send(message: dict) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    try:
        result = run_row(job, tick=lambda phase, n: send({"tick": phase, "n": n}))
        send({"result": result.to_dict(with_samples=True)})
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        from ..errors import EdgeVisionError

        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        send({"error": text, "edgevision": isinstance(exc, EdgeVisionError), "type": type(exc).__name__})


if __name__ == "__main__":
    main()
