"""What edgevision's OpenVINO runtime costs over plain OpenVINO on the same bundle, in one process.

Plain OpenVINO here is what a user would write with only the thread count set: ``read_model`` →
``compile_model(..., {"INFERENCE_NUM_THREADS": n})`` → ``infer``. The two are timed back to back in
each round (order alternating), and the result is the median of the per-round ratios with its
spread, so load from other processes hits both sides of a pair alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..bundle import Bundle
from ..errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Overhead:
    """edgevision / plain OpenVINO latency: median per-round ratio, its quartiles, and each side's median ms."""

    ratio: float
    ratio_q1: float
    ratio_q3: float
    edgevision_ms: float
    plain_ms: float
    rounds: int
    engine_config: dict[str, str | int | bool | None]

    def describe(self) -> str:
        return (
            f"edgevision {self.edgevision_ms:.3f} ms vs plain OpenVINO {self.plain_ms:.3f} ms: "
            f"×{self.ratio:.3f} (IQR {self.ratio_q1:.3f}–{self.ratio_q3:.3f}, {self.rounds} paired rounds)"
        )


def openvino_overhead(
    bundle: Bundle | str, *, threads: int, rounds: int = 20, iterations: int = 20, warmup: int = 10
) -> Overhead:
    """Pair edgevision's default OpenVINO runtime (batch 1) with plain OpenVINO on `bundle`'s own files."""
    import openvino as ov

    from ..runtimes import load_runtime

    if rounds < 3 or iterations < 1:
        raise ConfigError(f"Need rounds ≥ 3 and iterations ≥ 1, got {rounds} and {iterations}.")
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    shape = (1, *bundle.manifest.input.shape[1:])
    batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    core = ov.Core()
    files = bundle.manifest.model_files
    model = core.read_model(str(bundle.model_path), str(bundle.path / files[1]) if len(files) > 1 else "")
    request = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads}).create_infer_request()
    with load_runtime(bundle, "openvino", threads=threads) as engine:
        sides: dict[str, Callable[[], object]] = {
            "edgevision": lambda: engine.infer(batch), "plain": lambda: request.infer({0: batch}),
        }
        medians: dict[str, list[float]] = {name: [] for name in sides}
        for run in sides.values():
            for _ in range(warmup):
                run()
        for index in range(rounds):
            for name in sorted(sides, reverse=index % 2 == 1):
                samples = []
                for _ in range(iterations):
                    start = time.perf_counter()
                    sides[name]()
                    samples.append(time.perf_counter() - start)
                medians[name].append(float(np.median(samples)) * 1000.0)
        config = dict(engine.engine_config)
    ratios = np.array(medians["edgevision"]) / np.array(medians["plain"])
    q1, median, q3 = np.percentile(ratios, [25, 50, 75])
    return Overhead(
        ratio=float(median), ratio_q1=float(q1), ratio_q3=float(q3), edgevision_ms=float(np.median(medians["edgevision"])),
        plain_ms=float(np.median(medians["plain"])), rounds=rounds, engine_config=config,
    )
