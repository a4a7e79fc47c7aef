"""Paired rounds: a speed-up is the median of per-round ratios, reported with its spread.

On a shared machine the load drifts over seconds to minutes, so two rows timed minutes apart
see two different machines, and "each row's best round" picks a different moment for each row.
Here every compared pair (reference, candidate) is timed back to back in each round, the first
of the two alternating between rounds, and the speed-up is the median over rounds of
reference p50 / candidate p50. Drift slower than one pair cancels within each ratio; the spread
of the per-round ratios says how far the median can be trusted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .result import LatencyStats


@dataclass(frozen=True, kw_only=True)
class RatioStats:
    """Per-round ratios and their summary: median, quartiles (IQR) and min–max."""

    per_round: tuple[float, ...]
    median: float
    q1: float
    q3: float
    min: float
    max: float

    def __post_init__(self) -> None:
        if not self.per_round:
            raise ValueError("RatioStats needs at least one round")
        if not self.min <= self.q1 <= self.median <= self.q3 <= self.max:
            raise ValueError(
                f"ratio summary out of order: min {self.min}, q1 {self.q1}, median {self.median}, "
                f"q3 {self.q3}, max {self.max}"
            )

    @classmethod
    def from_ratios(cls, ratios: Sequence[float]) -> RatioStats:
        values = [float(r) for r in ratios]
        if not values:
            raise ValueError("no per-round ratios")
        if any(not v > 0 or v == float("inf") for v in values):
            raise ValueError(f"ratios must be finite and > 0, got {values}")
        ordered = sorted(values)
        if len(ordered) == 1:
            q1 = q3 = ordered[0]
        else:
            q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
        return cls(
            per_round=tuple(values), median=statistics.median(ordered), q1=q1, q3=q3,
            min=ordered[0], max=ordered[-1],
        )

    @classmethod
    def from_times(cls, reference_ms: Sequence[float], candidate_ms: Sequence[float]) -> RatioStats:
        """Speed-up of the candidate over the reference, one ratio per round (reference / candidate)."""
        if len(reference_ms) != len(candidate_ms):
            raise ValueError(
                f"paired rounds need as many reference times ({len(reference_ms)}) as candidate times "
                f"({len(candidate_ms)})"
            )
        if any(not t > 0 for t in (*reference_ms, *candidate_ms)):
            raise ValueError("paired latencies must be > 0 ms")
        return cls.from_ratios([r / c for r, c in zip(reference_ms, candidate_ms, strict=True)])

    @property
    def rounds(self) -> int:
        return len(self.per_round)

    def describe(self) -> str:
        """'2.41× (IQR 2.35–2.50, range 2.30–2.61, 5 rounds)'."""
        return (f"{self.median:.2f}× (IQR {self.q1:.2f}–{self.q3:.2f}, range {self.min:.2f}–{self.max:.2f}, "
                f"{self.rounds} round{'s' if self.rounds != 1 else ''})")

    def to_dict(self) -> dict:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.min, "max": self.max,
                "per_round": list(self.per_round), "rounds": self.rounds}


@dataclass(frozen=True, kw_only=True)
class PairRound:
    """One pair's two blocks in one round: p50 of each, and which ran first."""

    reference: str
    candidate: str
    reference_ms: float
    candidate_ms: float
    reference_first: bool


#: Times one block of calls and returns its statistics: (iterations, warmup) → LatencyStats. The engine
#: may live in this process (`in_process`) or in a worker process of its own.
BlockTimer = Callable[[int, int], LatencyStats]


def time_block(call: Callable[[], object], *, iterations: int, warmup: int) -> LatencyStats:
    """`warmup` untimed calls (thread pools wake up after another engine ran), then `iterations` timed."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return LatencyStats.from_samples(samples)


def in_process(call: Callable[[], object]) -> BlockTimer:
    """A BlockTimer that runs `call` here."""
    return lambda iterations, warmup: time_block(call, iterations=iterations, warmup=warmup)


def time_round(
    timers: Mapping[str, BlockTimer],
    pairs: Sequence[tuple[str, str]],
    *,
    round_index: int,
    iterations: int,
    warmup: int,
    pause_s: float = 0.1,
) -> tuple[list[PairRound], dict[str, list[LatencyStats]]]:
    """Time every (reference, candidate) pair back to back once; on odd rounds the candidate goes first
    and the pairs run in reverse order, so neither position nor place in the round favours a row.

    `pause_s` between blocks lets the previous engine's spinning threads go idle. Returns the pairs'
    p50s and every block's statistics per row.
    """
    if iterations < 5:
        raise ConfigError(f"iterations must be ≥ 5 for a meaningful p50, got {iterations}.")
    unknown = sorted({key for pair in pairs for key in pair} - set(timers))
    if unknown:
        raise ConfigError(f"Pairs name rows that were not given: {unknown}. Rows: {sorted(timers)}.")
    odd = round_index % 2 == 1
    blocks: dict[str, list[LatencyStats]] = {}
    measured = []
    for reference, candidate in (list(reversed(pairs)) if odd else pairs):
        order = (candidate, reference) if odd else (reference, candidate)
        p50 = {}
        for key in order:
            time.sleep(pause_s)
            stats = timers[key](iterations, warmup)
            blocks.setdefault(key, []).append(stats)
            p50[key] = stats.p50_ms
        measured.append(PairRound(reference=reference, candidate=candidate, reference_ms=p50[reference],
                                  candidate_ms=p50[candidate], reference_first=not odd))
    return measured, blocks


def pair_key(reference: str, candidate: str) -> str:
    """How a pair is named in JSON: 'reference/candidate' (the speed-up is reference time / candidate time)."""
    return f"{reference}/{candidate}"
