"""Band split: one normalised linear projection per frequency band (BS-RoFormer, section 3.1)."""

from typing import Sequence

import torch
from torch import nn

from .norm import RMSNorm


class BandSplit(nn.Module):
    """Project each band's stacked (bin, channel, real/imag) values to a feature vector.

    (b, t, sum(dim_inputs)) -> (b, t, bands, dim); dim_inputs[k] is band k's value count.
    """

    def __init__(self, dim: int, dim_inputs: Sequence[int]):
        super().__init__()
        self.dim_inputs = tuple(dim_inputs)
        self.to_features = nn.ModuleList([nn.Sequential(RMSNorm(dim_in), nn.Linear(dim_in, dim)) for dim_in in self.dim_inputs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.split(self.dim_inputs, dim=-1)
        return torch.stack([to_feature(band) for band, to_feature in zip(bands, self.to_features)], dim=-2)
