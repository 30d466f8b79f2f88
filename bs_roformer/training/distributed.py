"""Distributed data parallel under `torchrun`: which process this is, and the few collectives training needs.

An error on one rank must not leave the others waiting in a collective until the process group times out:
every step where ranks could fail apart (reading data, checking a run folder, validating, saving) runs
through `Processes.together`, which raises on every rank once any has failed.
"""

import gc
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import torch
import torch.distributed as dist

from ..devices import pick_device


T = TypeVar("T")


class OtherRankFailed(Exception):
    """Another training process failed (its own message says why); this one stops with it."""


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
            if device.type == "cuda":  # nccl's object collectives (gather, together) run on the current GPU
                torch.cuda.set_device(device)
            # torch.distributed.nn.functional takes the default group as its functions' default argument when first
            # imported (DDP imports it); imported after the group exists, it keeps the group alive past `stop`
            import torch.distributed.nn  # noqa: F401
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")

    def together(self, action: Callable[[], T]) -> T:
        """`action()` on every rank; if it raises on any, every rank raises (its own error, else OtherRankFailed)."""
        try:
            result, failure = action(), None
        except Exception as error:  # any error, bugs included: the other ranks must hear of it, then it is re-raised
            result, failure = None, error
        if self.distributed:
            reports = self.gather(None if failure is None else f"{type(failure).__name__}: {failure}")
            failed = [f"rank {rank}: {report}" for rank, report in enumerate(reports) if report is not None]
            if failed and failure is None:
                raise OtherRankFailed(f"stopped because another training process failed ({'; '.join(failed)})")
        if failure is not None:
            raise failure
        return result

    def gather(self, value: Any) -> list:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def stop(self) -> None:
        """Leave the process group and free it now, while Python runs. Freed only at interpreter exit, gloo's
        worker threads may no longer take the GIL to release the tensors of their last collective, and the
        process aborts now and then ("terminate called without an active exception")."""
        if self.distributed and dist.is_initialized():
            gc.collect()  # anything in a reference cycle that still holds the group (a DDP wrapper)
            dist.destroy_process_group()
