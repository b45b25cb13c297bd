"""Training on several processes with PyTorch's own engine: ``torchrun`` + ``DistributedDataParallel``.

``torchrun --nproc_per_node=N -m genlab train ...`` starts N copies of the same trainer. Each reads
its rank from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), joins the process group
(NCCL on CUDA, gloo on CPU) and trains on its own slice of every global batch; DDP averages the
gradients, so one step of N processes equals one step of one process on the whole ``--batch-size``
(the global batch), up to the order of floating-point sums.

Only rank 0 writes the run directory (run.json, metrics.jsonl, samples, checkpoints). Decisions that
every rank must take together -- stop, skip a non-finite step -- are reduced over all ranks each
step, so no rank runs ahead of the others.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .. import names
from ..storage import atomic_write_bytes
from .process import pid_alive


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """This process's place in a torchrun job (a single process outside one)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def setup(world: World, device: torch.device) -> torch.device:
    """Join the process group; on CUDA each process takes GPU ``local_rank``. Returns the device to use."""
    if not world.distributed:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_max(world: World, flags: list[float], device: torch.device) -> list[float]:
    """Element-wise maximum over ranks: a flag raised by any rank is raised for all."""
    if not world.distributed:
        return flags
    t = torch.tensor(flags, dtype=torch.float32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def all_sum(world: World, values: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (a copy; the input is not changed)."""
    if not world.distributed:
        return values
    t = values.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


# -- knowing which rank died ----------------------------------------------------------------------
def record_pid(run_path: Path, world: World) -> None:
    """Each rank leaves its host and PID, so that rank 0 can name a peer that died (on its own machine)."""
    if world.distributed:
        d = Path(run_path) / names.RANKS
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / f"rank-{world.rank}.pid", f"{os.getpid()} {socket.gethostname()}\n".encode())


def dead_ranks(run_path: Path, world: World) -> list[int]:
    """Ranks on this machine whose process is gone (ranks on other machines cannot be checked from here)."""
    dead, here = [], socket.gethostname()
    for r in range(world.size):
        try:
            pid, host = (Path(run_path) / names.RANKS / f"rank-{r}.pid").read_text().split()
        except (OSError, ValueError):
            continue
        if host == here and not pid_alive(int(pid)):
            dead.append(r)
    return dead
