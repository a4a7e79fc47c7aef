"""Benchmark bundles × runtimes × thread counts: latency percentiles, throughput, memory, size, accuracy.

Each row runs in its own process (spawned, so no engine state leaks between rows) and reports
that process's peak RSS. Bundles whose parity check failed are refused: a fast wrong model is
not a result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..bundle import Bundle
from ..errors import ConfigError, EdgeVisionError, ParityError, RuntimeEngineError
from .result import BenchReport, BenchResult, LatencyStats
from .worker import RowJob, result_from_dict, run_row

if TYPE_CHECKING:
    from ..devices import DeviceProfile

#: progress(phase, amount, total_for_phase_or_None)
ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    warmup: int = 10
    iterations: int = 100
    batch_size: int = 1
    threads: tuple[int | None, ...] = (None,)
    data: Path | None = None  # ImageFolder for top-1 through each engine, or a data root with test/ inside
    split_name: str | None = None  # what the accuracy is measured on (default: the measured folder's name)
    max_images: int | None = None
    isolate: bool = True  # one process per row (true peak RSS); False runs rows in this process

    def __post_init__(self) -> None:
        if self.iterations < 5:
            raise ConfigError(f"iterations must be ≥ 5 for meaningful percentiles, got {self.iterations}.")
        if self.warmup < 0 or self.batch_size < 1:
            raise ConfigError("warmup must be ≥ 0 and batch_size ≥ 1.")
        if any(t is not None and t < 1 for t in self.threads):
            raise ConfigError(f"thread counts must be ≥ 1, got {self.threads}.")
        if self.split_name is not None and (not self.split_name.strip() or self.data is None):
            raise ConfigError("split_name names the split given as data: give data too, and a non-empty name.")

    def accuracy_data(self) -> tuple[Path, str] | None:
        """(image folder, split name) the accuracy column is measured on; None without data."""
        if self.data is None:
            return None
        from ..data.splits import resolve_measured_folder

        folder, name = resolve_measured_folder(self.data)
        return folder, self.split_name or name


def plan_rows(
    bundles: Sequence[Bundle], runtimes: Sequence[str] | None, *, device: DeviceProfile | None = None
) -> list[tuple[Bundle, str]]:
    """(bundle, runtime) pairs: each bundle with each named runtime that can run its format.

    With no runtimes named, a device profile picks each bundle's runtime (else its format's default).
    """
    from ..runtimes import RUNTIMES, runtime_name

    pairs = []
    for bundle in bundles:
        if not bundle.parity_passed:
            why = "has no parity report" if bundle.manifest.parity is None else "failed its parity check"
            raise ParityError(
                f"Refusing to benchmark {bundle.path}: it {why}, so its speed would be meaningless. Re-export it."
            )
        if not runtimes:
            if device is not None:
                from ..devices import choose_runtime

                pairs.append((bundle, choose_runtime(device, bundle.manifest.format)))
            else:
                pairs.append((bundle, runtime_name(bundle)))
            continue
        usable = [r for r in runtimes if bundle.manifest.format in RUNTIMES.get(r).formats]
        if not usable:
            raise ConfigError(
                f"None of the runtimes {list(runtimes)} runs {bundle.path} ({bundle.manifest.format.value})."
            )
        pairs.extend((bundle, r) for r in usable)
    return pairs


def bench(
    bundles: Sequence[Bundle | str | os.PathLike[str]],
    *,
    runtimes: Sequence[str] | None = None,
    config: BenchConfig = BenchConfig(),
    baseline: str | None = None,
    device: DeviceProfile | None = None,
    progress: ProgressCallback | None = None,
) -> BenchReport:
    """Run every bundle × runtime × thread count; ratios are against `baseline` (a bundle name).

    `device` (from `edgevision.devices.resolve_device`) picks runtimes when none are named, and
    its thread count when `config.threads` is left at the default.
    """
    loaded = [b if isinstance(b, Bundle) else Bundle.load(b) for b in bundles]
    if not loaded:
        raise ConfigError("Give at least one bundle to benchmark.")
    if device is not None and config.threads == (None,) and device.threads is not None:
        config = replace(config, threads=(device.threads,))
    measured = config.accuracy_data()
    pairs = plan_rows(loaded, runtimes, device=device)
    rows: list[BenchResult] = []
    for bundle, runtime in pairs:
        for threads in config.threads:
            job = RowJob(
                str(bundle.path), runtime, threads, config.batch_size, config.warmup, config.iterations,
                str(measured[0]) if measured else None, config.max_images,
            )
            row = _run_isolated(job, progress) if config.isolate else run_row(job, tick=progress)
            rows.append(replace(row, accuracy_split=measured[1]) if measured else row)
            if progress:
                progress("row", 1)
    index = 0
    if baseline is not None:
        names = [r.name for r in rows]
        if baseline not in names:
            from ..errors import did_you_mean

            raise ConfigError(f"Baseline {baseline!r} is not among the rows {names}.{did_you_mean(baseline, names)}")
        index = names.index(baseline)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.__dict__.items()}
    if measured:
        settings["accuracy_data"], settings["accuracy_split"] = str(measured[0]), measured[1]
    if device is not None:
        settings["device"] = device.name
    return BenchReport(rows=rows, baseline=index, settings=settings)


def _run_isolated(job: RowJob, progress: ProgressCallback | None) -> BenchResult:
    """Run one row in a fresh `python -m edgevision.bench.worker` (safe without a __main__ guard)."""
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    process = subprocess.Popen(
        [sys.executable, "-m", "edgevision.bench.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(asdict(job)))
    process.stdin.close()
    try:
        for line in process.stdout:
            message = json.loads(line)
            if "tick" in message:
                if progress:
                    progress(message["tick"], message["n"])
            elif "result" in message:
                return result_from_dict(message["result"])
            else:
                if message["edgevision"]:
                    raise EdgeVisionError(message["error"])
                raise RuntimeEngineError(f"{job.runtime} failed on {job.bundle}: {message['type']}: {message['error']}")
    finally:
        process.wait(timeout=60)
    stderr = (process.stderr.read() if process.stderr else "").strip().splitlines()
    raise RuntimeEngineError(
        f"The {job.runtime} benchmark process for {job.bundle} died (exit code {process.returncode})"
        + (f": {stderr[-1]}" if stderr else ".")
    )


__all__ = ["BenchConfig", "BenchReport", "BenchResult", "LatencyStats", "bench", "plan_rows"]
