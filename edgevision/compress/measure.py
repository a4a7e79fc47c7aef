"""What a compression stage changed: parameters, MACs, checkpoint size and measured latency.

Counts come from torch-pruning's op counter (multiply-accumulates of one image at the model's
input size); latency is measured, never estimated: torch eager, batch 1, fixed thread count,
median of `runs` timed calls after `warmup` untimed ones. Both count and time `module.forward`, which
for a detector is the deployable graph (raw head plus box decoding, what every engine runs), not its
training view; NMS and the letterbox inverse run on the device after the engine and are not included.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from typing import Any

from .._optional import require
from ..errors import ConfigError
from ..model import TrainedModel


@dataclass(frozen=True, kw_only=True)
class LatencyConfig:
    """How latency is timed. `threads` is fixed so before/after numbers compare like with like."""

    runs: int = 30
    warmup: int = 5
    threads: int = 1

    def __post_init__(self) -> None:
        if self.runs < 1 or self.warmup < 0:
            raise ConfigError(f"LatencyConfig needs runs ≥ 1 and warmup ≥ 0, got runs={self.runs}, warmup={self.warmup}.")
        if self.threads < 1:
            raise ConfigError(f"LatencyConfig.threads must be at least 1, got {self.threads}.")


@dataclass(frozen=True, kw_only=True)
class ModelStats:
    """Size and speed of one model. `macs` are per image; `latency_ms` is the median (batch 1)."""

    params: int
    macs: int
    state_dict_bytes: int
    latency_ms: float
    latency_threads: int
    latency_runs: int

    def __post_init__(self) -> None:
        if min(self.params, self.macs, self.state_dict_bytes) <= 0:
            raise ValueError(f"ModelStats counts must be positive, got {self}.")
        if not self.latency_ms > 0:
            raise ValueError(f"ModelStats.latency_ms must be positive, got {self.latency_ms}.")

    def describe(self) -> str:
        return (
            f"{self.macs / 1e6:.2f} MMACs, {self.params / 1e6:.3f} M params, "
            f"{self.state_dict_bytes / 2**20:.2f} MiB, {self.latency_ms:.2f} ms (torch, {self.latency_threads} thread)"
        )


def count_macs_params(module: Any, input_size: tuple[int, int]) -> tuple[int, int]:
    """(MACs, parameters) for one image of `input_size` (height, width)."""
    torch = require("torch", extra="compress", what="PyTorch")
    tp = require("torch_pruning", extra="compress", what="torch-pruning")

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            macs, params = tp.utils.count_ops_and_params(module, torch.zeros(1, 3, *input_size))
    finally:
        module.train(was_training)
    return int(macs), int(params)


def state_dict_bytes(module: Any) -> int:
    """Bytes of the state dict as torch.save writes it (what a checkpoint costs on disk)."""
    torch = require("torch", extra="compress", what="PyTorch")

    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def measure_latency_ms(module: Any, input_size: tuple[int, int], *, config: LatencyConfig = LatencyConfig()) -> float:
    """Median wall time of one batch-1 forward pass in torch eager, in milliseconds."""
    torch = require("torch", extra="compress", what="PyTorch")

    previous_threads = torch.get_num_threads()
    was_training = module.training
    torch.set_num_threads(config.threads)
    module.eval()
    example = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            for _ in range(config.warmup):
                module(example)
            timings = []
            for _ in range(config.runs):
                started = time.perf_counter()
                module(example)
                timings.append((time.perf_counter() - started) * 1000.0)
    finally:
        torch.set_num_threads(previous_threads)
        module.train(was_training)
    return statistics.median(timings)


def measure(model: TrainedModel, *, latency: LatencyConfig = LatencyConfig()) -> ModelStats:
    """All of the above for a TrainedModel at its own input size."""
    macs, params = count_macs_params(model.module, model.input_size)
    return ModelStats(
        params=params,
        macs=macs,
        state_dict_bytes=state_dict_bytes(model.module),
        latency_ms=measure_latency_ms(model.module, model.input_size, config=latency),
        latency_threads=latency.threads,
        latency_runs=latency.runs,
    )
