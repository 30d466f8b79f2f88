"""Separating a batch of files across processes: `torchrun --nproc_per_node N -m bs_roformer separate DIR`.

Every process gets the same sorted list of inputs and takes every N-th file from its rank on, so each file is
separated and written by exactly one process. The model is loaded by rank 0 first (a named model is
downloaded once, an ONNX file exported once), then by the others from the cache. At the end the ranks
gather their counts and errors, and rank 0 prints the one summary. Without torchrun this is one process
doing everything.
"""

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, List, Optional, Sequence, Tuple, TypeVar

import torch

from ..training.distributed import Processes

T = TypeVar("T")


@dataclass
class Tally:
    """What one process (or all, once combined) did with its inputs."""

    inputs: int = 0
    written: int = 0
    errors: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)


def start(requested_device: Optional[str]) -> Tuple[Processes, Optional[str]]:
    """Join torchrun's process group, if any; returns it and the device this process separates on."""
    processes = Processes.start()
    if not processes.distributed:
        return processes, requested_device
    device = processes.device(requested_device)
    processes.join(device)
    return processes, str(device)


def share(jobs: Sequence[T], processes: Processes) -> List[T]:
    """This rank's files (or jobs): every world_size-th one from the rank on, so each has one process."""
    return list(jobs[processes.rank :: processes.world_size])


@contextlib.contextmanager
def main_first(processes: Processes) -> Iterator[None]:
    """Run the block on rank 0 first, then on the other ranks (shared downloads and exports happen once)."""
    if not processes.is_main:
        _meet(processes)
    try:
        yield
    finally:
        if processes.is_main:
            _meet(processes)


def _meet(processes: Processes) -> None:
    """Wait until every rank gets here (a collective every rank takes part in)."""
    processes.gather(None)


def everyone(processes: Processes, ok: bool) -> bool:
    """Whether every rank is `ok` (loaded its model, say); when one is not, all stop together."""
    together = all(processes.gather(ok)) if processes.distributed else ok
    if not together:
        processes.stop()
    return together


def combined(processes: Processes, tally: Tally) -> Tally:
    """Every rank's tally added up, on every rank (errors in rank order)."""
    if processes.distributed and torch.distributed.is_initialized():
        tallies = processes.gather(tally)
        processes.stop()
    else:
        tallies = [tally]
    return Tally(
        inputs=sum(part.inputs for part in tallies),
        written=sum(part.written for part in tallies),
        errors=[message for part in tallies for message in part.errors],
        skipped=[message for part in tallies for message in part.skipped],
    )
