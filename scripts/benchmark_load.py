"""How much of the CPU other processes took while the benchmark ran (Linux /proc/stat).

On a shared machine a latency figure means little without this: a busy process on the cores an
engine's threads use makes the engine wait for its own threads. `CpuMonitor` reports, between two marks,
the cores used by everything except this process, the children it has already reaped, and the
processes it is told are its own (the benchmark's row workers, still running), so each row can be
shown with the load it was measured under.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _busy_seconds() -> float | None:
    """CPU-seconds all cores spent not idle since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS


def _process_seconds(pid: int) -> float:
    """CPU-seconds a running process (and its reaped children) used; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    # after the command name: state is field 3, utime/stime/cutime/cstime are fields 14-17
    return sum(int(v) for v in fields[11:15]) / _TICKS


def _own_seconds(own_pids: Sequence[int] = ()) -> float:
    times = os.times()
    ours = times.user + times.system + times.children_user + times.children_system
    return ours + sum(_process_seconds(pid) for pid in own_pids)


class CpuMonitor:
    """`mark()` → cores used by other processes since the previous mark (None if unknown).

    `own_pids`: running processes that belong to the benchmark and are not counted as others.
    """

    def __init__(self, *, own_pids: Sequence[int] = ()) -> None:
        self._pids = tuple(own_pids)
        self._last = (time.perf_counter(), _busy_seconds(), _own_seconds(self._pids))

    def mark(self) -> float | None:
        now = (time.perf_counter(), _busy_seconds(), _own_seconds(self._pids))
        (wall0, busy0, own0), (wall1, busy1, own1) = self._last, now
        self._last = now
        if busy0 is None or busy1 is None or wall1 - wall0 <= 0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0))


def wait_for_quiet(
    *, max_wait_s: float, threshold_cores: float, log: Callable[[str], None], own_pids: Sequence[int] = ()
) -> float | None:
    """Wait (up to `max_wait_s`) until other processes use under `threshold_cores`; return the last reading."""
    deadline = time.perf_counter() + max_wait_s
    monitor = CpuMonitor(own_pids=own_pids)
    time.sleep(3.0)
    others = monitor.mark()
    announced = False
    while others is not None and others >= threshold_cores and time.perf_counter() < deadline:
        if not announced:
            log(f"    other processes use {others:.2f} cores; waiting up to {max_wait_s:.0f} s for a quieter moment")
            announced = True
        time.sleep(5.0)
        others = monitor.mark()
    return others
