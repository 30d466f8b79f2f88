"""RMS normalisation: the pre-norm of every block, as in the BS-RoFormer reference code."""

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """x / ||x|| * sqrt(dim) * gamma over the last axis: (..., dim) -> (..., dim).

    Computed as the fused x / sqrt(mean(x^2) + eps) * gamma; eps = 1e-24 / dim makes it the reference's
    x / max(||x||, 1e-12) * sqrt(dim) for every vector but those of norm near 1e-12.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.eps = 1e-24 / dim
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != self.gamma.dtype:
            # bf16 / fp16 activations under autocast: normalised in float32 and rounded once. (Passed as they
            # are, torch upcasts them anyway, rounds the normalised values before the gain, and warns that it
            # cannot fuse.)
            return F.rms_norm(x.to(self.gamma.dtype), (self.dim,), self.gamma, self.eps).to(x.dtype)
        return F.rms_norm(x, (self.dim,), self.gamma, self.eps)
