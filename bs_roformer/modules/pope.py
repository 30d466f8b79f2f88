"""Polar position embeddings (PoPE; Gopalakrishnan et al. 2025, "Decoupling the 'What' and 'Where' With Polar
Coordinate Positional Embeddings"), the position code of ZFTurbo's "BS PolarFormer".

Each query and key feature j becomes a complex number whose magnitude is softplus of the feature (the
"what") and whose phase is position x frequency j (the "where"); keys add a learned phase per head and
feature. The attention score is the real part of q conj(k): sum_j |q_j| |k_j| cos((i - n) f_j - bias_j), a
dot product of twice the head size, so the usual fused attention kernels compute it.

The module keeps the state-dict names of `PoPE` in pope-pytorch (`bias`, `inv_freqs`), which MSST uses, so
its checkpoints load unchanged; pope-pytorch itself is not needed.
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn


def pope_inverse_frequencies(dim_head: int, theta: float = 10000.0) -> torch.Tensor:
    """theta^(-j / dim_head) for j < dim_head: one frequency per feature (not per feature pair, as in RoPE)."""
    return theta ** -(torch.arange(dim_head).float() / dim_head)


class PolarEmbedding(nn.Module):
    """The positions' phases, shared by every attention of one axis.

    bias: (heads, dim_head) learned key phase offsets, used clamped to [-2 pi, 0] as in the reference.
    inv_freqs: (dim_head,) fixed frequencies, a buffer saved with the weights.
    """

    def __init__(self, dim_head: int, heads: int, theta: float = 10000.0):
        super().__init__()
        self.register_buffer("inv_freqs", pope_inverse_frequencies(dim_head, theta))
        self.bias = nn.Parameter(torch.zeros(heads, dim_head))

    def rotations(self, seq_len: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """exp(i phase) for queries (seq_len, dim_head) and keys (heads, seq_len, dim_head), complex64.

        Phases are formed in float32 whatever the model's dtype (see modules/rotary.py for why).
        """
        positions = torch.arange(seq_len, device=device, dtype=torch.float32)
        angles = torch.outer(positions, self.inv_freqs.to(device=device, dtype=torch.float32))
        key_angles = angles + self.bias.float().clamp(-2 * math.pi, 0.0).unsqueeze(1)
        return torch.polar(torch.ones_like(angles), angles), torch.polar(torch.ones_like(key_angles), key_angles)


def apply_pope(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Queries or keys (b, h, n, d) -> (b, h, n, 2d): softplus magnitudes at the position's phases, as
    interleaved (real, imaginary) pairs; computed in float32 at least, returned in the input's dtype."""
    polar = F.softplus(x.to(torch.promote_types(x.dtype, torch.float32))) * rotation
    return torch.view_as_real(polar).flatten(-2).to(x.dtype)
