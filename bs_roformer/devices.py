"""Where models run and at which precision: one policy for separation and training (torch only).

Device policy: the device asked for, else CUDA (under torchrun, the process's own GPU), else Apple's MPS
(one process only: gloo cannot reduce MPS tensors between processes), else the CPU.
"""

import contextlib
from typing import Optional

import torch

# autocast dtype of each precision name; fp32 runs without autocast
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(requested: Optional[str] = None, *, cuda_index: int = 0, allow_mps: bool = True) -> torch.device:
    """The requested device, else CUDA (device `cuda_index`) > MPS (if `allow_mps`) > CPU."""
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", cuda_index)
    if allow_mps and getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device, precision: str):
    """The autocast context of a precision name ("fp32": none)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
