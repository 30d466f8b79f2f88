"""Distributed data parallel under `torchrun`: which process this is, and the few collectives training needs."""

import os
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from ..devices import pick_device


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes (one process, rank 0 of 1, without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def start(cls) -> "Processes":
        """Read the process group torchrun describes in the environment (a single process without it)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        return cls(rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def device(self, requested: Optional[str]) -> torch.device:
        """The requested device, else this process's GPU, else (one process) MPS, else the CPU."""
        return pick_device(requested, cuda_index=self.local_rank, allow_mps=not self.distributed)

    def join(self, device: torch.device) -> None:
        """Join the process group: nccl between GPUs, gloo between CPU processes."""
        if self.distributed and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def from_main(self, value: Any) -> Any:
        """Rank 0's `value`, on every rank."""
        if not self.distributed:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()
