"""Activation checkpointing (`use_torch_checkpoint`): trade recomputation for training memory."""

import torch
from torch.utils.checkpoint import checkpoint


def maybe_checkpoint(enabled: bool, fn, *args):
    """fn(*args), with activations recomputed in the backward pass when enabled and gradients are on."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
