"""Benchmark results: self-validating dataclasses, and the statistics behind them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True, kw_only=True)
class LatencyStats:
    """Per-call latency statistics in milliseconds."""

    n: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"LatencyStats needs at least one sample, got n={self.n}")
        values = (self.p50_ms, self.p90_ms, self.p99_ms, self.mean_ms, self.std_ms, self.min_ms)
        if any(not math.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"latencies must be finite and ≥ 0, got {values}")
        if not self.min_ms <= self.p50_ms <= self.p90_ms <= self.p99_ms:
            raise ValueError(f"percentiles out of order: min {self.min_ms}, p50 {self.p50_ms}, p90 {self.p90_ms}, p99 {self.p99_ms}")

    @classmethod
    def from_samples(cls, samples_ms: list[float] | np.ndarray) -> LatencyStats:
        values = np.asarray(samples_ms, dtype=np.float64)
        if values.size == 0:
            raise ValueError("no latency samples")
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return cls(
            n=int(values.size), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
            mean_ms=float(values.mean()), std_ms=float(values.std()), min_ms=float(values.min()),
        )


@dataclass(frozen=True, kw_only=True)
class BenchResult:
    """One row: a bundle run by one runtime at one thread count."""

    name: str  # the bundle directory's name
    bundle: str  # its path
    format: str
    precision: str  # the bundle's precision
    runtime: str
    engine_precision: str  # what the engine computed in
    threads: int | None
    batch_size: int
    latency: LatencyStats
    throughput_ips: float  # images per second at this batch size
    peak_rss_mb: float  # peak resident memory of the process that ran this row
    size_mb: float  # model files on disk
    accuracy: float | None = None  # top-1 through the engine, when data was given
    accuracy_images: int | None = None
    # The settings the engine ran with (hint, threads, precision hint, streams, spinning, static shape...),
    # as `Runtime.engine_config` read them back; keys differ per engine.
    engine_config: dict[str, str | int | bool | None] = field(default_factory=dict)
    # Compute layers per precision and where that was read (`Runtime.precision_report`).
    engine_precision_detail: dict[str, object] = field(default_factory=dict)
    accuracy_split: str | None = None  # the split `accuracy` is measured on (e.g. "test"), named by the caller
    samples_ms: list[float] = field(default_factory=list, repr=False)
    task: str = "classify"  # the bundle's task; `accuracy` is its headline metric, named by `metric`
    metric: str = "top-1"  # what `accuracy` is: "top-1" (classify), "mAP50-95" (detect), "mIoU" (segment)
    metrics: dict[str, float] = field(default_factory=dict)  # the task's other figures, e.g. {"mAP50": 0.93}
    # Detect: post-processing (decode + NMS) alone, and preprocess + inference + post-processing, per image
    # of the measured split (batch 1); `latency` stays inference alone.
    postprocess: LatencyStats | None = None
    end_to_end: LatencyStats | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {self.batch_size}")
        if not (self.throughput_ips > 0 and math.isfinite(self.throughput_ips)):
            raise ValueError(f"throughput must be > 0, got {self.throughput_ips}")
        if self.peak_rss_mb <= 0 or self.size_mb < 0:
            raise ValueError(f"memory/size must be positive, got rss {self.peak_rss_mb}, size {self.size_mb}")
        if self.accuracy is not None and not 0.0 <= self.accuracy <= 1.0:
            raise ValueError(f"accuracy must be within [0, 1], got {self.accuracy}")
        if any(not 0.0 <= value <= 1.0 for value in self.metrics.values()):
            raise ValueError(f"metrics must be within [0, 1], got {self.metrics}")
        bad = {k: v for k, v in self.engine_config.items() if v is not None and not isinstance(v, str | int | float)}
        if bad:
            raise ValueError(f"engine_config values must be str, int, bool or None (JSON and CSV), got {bad}")

    @property
    def label(self) -> str:
        threads = "default" if self.threads is None else str(self.threads)
        return f"{self.name} · {self.runtime} · {threads}t"

    def to_dict(self, *, with_samples: bool = False) -> dict:
        data = asdict(self)
        if not with_samples:
            data.pop("samples_ms")
        return data


@dataclass
class BenchReport:
    """All rows of one run, with the row the ratios are taken against."""

    rows: list[BenchResult]
    baseline: int = 0  # index into rows
    settings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rows:
            raise ValueError("a BenchReport needs at least one row")
        if not 0 <= self.baseline < len(self.rows):
            raise ValueError(f"baseline index {self.baseline} is outside the {len(self.rows)} rows")

    def speedup(self, row: BenchResult) -> float:
        """How many times faster than the baseline row (by median latency per image)."""
        base = self.rows[self.baseline]
        return (base.latency.p50_ms / base.batch_size) / (row.latency.p50_ms / row.batch_size)
