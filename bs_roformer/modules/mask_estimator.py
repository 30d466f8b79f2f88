"""Mask estimation: one MLP per band from features back to the band's complex mask values."""

from typing import Sequence

import torch
from torch import nn

from .norm import RMSNorm


def mlp(dim_in: int, dim_out: int, dim_hidden: int, hidden_layers: int) -> nn.Sequential:
    """Linear layers with tanh between them; `hidden_layers` hidden layers of width dim_hidden."""
    dims = (dim_in, *((dim_hidden,) * hidden_layers), dim_out)
    layers = []
    for index, (layer_in, layer_out) in enumerate(zip(dims[:-1], dims[1:])):
        if index > 0:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(layer_in, layer_out))
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """Per-band MLP with a GLU output: (b, t, bands, dim) -> (b, t, sum(dim_inputs)).

    dim_inputs[k] is band k's value count (bins x channels x real/imag), as in `BandSplit`.
    norm_each_band: normalise each band's features first (BSRNN); the RoFormers normalise once before.
    """

    def __init__(
        self,
        dim: int,
        dim_inputs: Sequence[int],
        hidden_layers: int,
        mlp_expansion_factor: int = 4,
        norm_each_band: bool = False,
    ):
        super().__init__()
        self.dim_inputs = tuple(dim_inputs)
        dim_hidden = dim * mlp_expansion_factor

        def to_freq(dim_in: int) -> nn.Sequential:
            norm = [RMSNorm(dim)] if norm_each_band else []
            # the MLP doubles its output for the GLU gate
            return nn.Sequential(*norm, mlp(dim, dim_in * 2, dim_hidden, hidden_layers), nn.GLU(dim=-1))

        self.to_freqs = nn.ModuleList([to_freq(dim_in) for dim_in in self.dim_inputs])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.unbind(dim=-2)
        return torch.cat([to_freq(band) for band, to_freq in zip(bands, self.to_freqs)], dim=-1)
