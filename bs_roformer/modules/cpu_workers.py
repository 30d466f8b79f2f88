"""Independent pieces of CPU inference side by side, one intra-op thread each.

With torch's intra-op parallelism every operator is split across the cores, and on a few cores the many
small operators of a transformer layer (norms, rotary, attention over short sequences, residual adds) gain
little from the split while each one waits for all threads. The axial transformer's groups of sequences are
independent, so here each core takes whole groups instead, one thread per core (torch's operators release
the GIL, so Python threads run them in parallel).
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Sequence, TypeVar

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_across_cores(work: Callable[[Item], Result], items: Sequence[Item]) -> List[Result]:
    """[work(item) for item in items], spread over torch.get_num_threads() threads of one intra-op thread each.

    The workers run in the caller's grad, inference and CPU autocast modes (all thread-local in torch). While
    they run, the process's intra-op thread count is 1 (torch's setting is process-wide); it is restored after.
    Under a dispatch mode (FlopCounterMode, a debugging mode), which would not see other threads' operators,
    the items run in the caller's thread.
    """
    threads = torch.get_num_threads()
    if threads == 1 or len(items) < 2 or _get_current_dispatch_mode() is not None:
        return [work(item) for item in items]
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    autocast, autocast_dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def in_callers_modes(item: Item) -> Result:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad), torch.autocast("cpu", autocast_dtype, enabled=autocast):
            return work(item)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(threads, len(items)), initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return list(pool.map(in_callers_modes, items))
    finally:
        torch.set_num_threads(threads)
