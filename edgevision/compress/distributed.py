"""Training stages on PyTorch's own distributed engine: `torchrun` launches, `torch.distributed` communicates.

A process started by `torch.distributed.run` finds RANK / WORLD_SIZE / MASTER_ADDR in its
environment; `process_group()` joins the group (gloo on CPU, NCCL where CUDA is present) and
`fit` then wraps the trainee in DistributedDataParallel. Outside torchrun everything here
reports a world of one and does nothing, so the same code path runs single-process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._optional import require
from ..errors import ConfigError, TrainingError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0 alone writes checkpoints, bundles and reports."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "MASTER_ADDR" in os.environ


def world() -> World:
    """This process's rank and the world size (0 and 1 unless a process group is initialised)."""
    torch = require("torch", extra="compress", what="PyTorch")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return World(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return World()


@contextmanager
def process_group() -> Iterator[World]:
    """Join the torchrun process group for the block (a world of one outside torchrun)."""
    torch = require("torch", extra="compress", what="PyTorch")
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        yield world()
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)
    try:
        yield world()
    finally:
        torch.distributed.destroy_process_group()


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object)."""
    torch = require("torch", extra="compress", what="PyTorch")
    if world().size == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    torch = require("torch", extra="compress", what="PyTorch")
    size = world().size
    if size == 1:
        return [value]
    found: list[Any] = [None] * size
    torch.distributed.all_gather_object(found, value)
    return found


def sum_over_ranks(*values: float) -> list[float]:
    """Element-wise sums of `values` over all ranks."""
    torch = require("torch", extra="compress", what="PyTorch")
    if world().size == 1:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def barrier() -> None:
    torch = require("torch", extra="compress", what="PyTorch")
    if world().size > 1:
        torch.distributed.barrier()


def wrap(trainee: Any) -> Any:
    """DistributedDataParallel around `trainee` in a world of more than one; `trainee` itself otherwise."""
    torch = require("torch", extra="compress", what="PyTorch")
    if world().size == 1:
        return trainee
    return torch.nn.parallel.DistributedDataParallel(trainee)


# -- launching -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LaunchConfig:
    """torchrun's settings: processes per machine, machines, this machine's rank and the rendezvous address."""

    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ConfigError(f"--nproc-per-node and --nnodes must be at least 1, got {self.nproc_per_node} and "
                              f"{self.nnodes}.")
        if not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(f"--node-rank must lie in 0..{self.nnodes - 1} (one per machine), got {self.node_rank}.")
        if not 0 < self.master_port < 65536:
            raise ConfigError(f"--master-port must be a TCP port (1-65535), got {self.master_port}.")

    @property
    def distributed(self) -> bool:
        return self.nproc_per_node * self.nnodes > 1

    def torchrun_arguments(self) -> list[str]:
        return [f"--nproc-per-node={self.nproc_per_node}", f"--nnodes={self.nnodes}", f"--node-rank={self.node_rank}",
                f"--master-addr={self.master_addr}", f"--master-port={self.master_port}"]


def check_port_free(config: LaunchConfig) -> None:
    """On the machine that hosts the rendezvous (node rank 0), the port must be free before launching."""
    if config.node_rank != 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("", config.master_port))
        except OSError:
            raise ConfigError(
                f"Port {config.master_port} is already in use on this machine, so the ranks cannot meet there. "
                "Pass --master-port with a free port (the same on every machine)."
            ) from None


def run_under_torchrun(config: LaunchConfig, module_arguments: Sequence[str]) -> None:
    """`python -m torch.distributed.run <config> -m <module_arguments>`; a failed rank is one error naming it."""
    check_port_free(config)
    command = [sys.executable, "-m", "torch.distributed.run", *config.torchrun_arguments(), "-m", *module_arguments]
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(command, env=environment, check=False)
    if done.returncode != 0:
        raise TrainingError(
            f"A training process failed under torch.distributed.run (exit code {done.returncode}; its rank and "
            "traceback are in the output above). Nothing was written; rerun with --resume to continue from the last "
            "completed epoch."
        )
