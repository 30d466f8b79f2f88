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
        return F.rms_norm(x, (self.dim,), self.gamma, self.eps)
