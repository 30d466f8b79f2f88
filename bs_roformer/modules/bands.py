"""Band layouts: which STFT bins feed each band, and how per-band masks return to the bins.

BS-RoFormer splits the spectrum into contiguous bands (each bin in exactly one band). Mel-Band RoFormer
(Wang et al. 2023) uses overlapping bands from a mel filter bank; a bin covered by several bands gets
the average of their masks.
"""

from typing import Optional, Sequence, Tuple

import librosa
import numpy as np
import torch
from einops import rearrange, repeat
from torch import nn


def mel_band_membership(
    sample_rate: int, n_fft: int, num_bands: int, bins: Optional[Tuple[int, int]] = None
) -> torch.Tensor:
    """(num_bands, bins) bool: whether a bin lies under each band's triangle of a librosa mel filter bank.

    As in the reference code, the first band always includes the first bin and the last band the last bin
    (librosa gives them zero or denormal weight). With `bins = (first, end)`, the filter bank spans only
    those bins' frequencies.
    """
    first, end = (0, n_fft // 2 + 1) if bins is None else bins
    span = {} if bins is None else dict(fmin=first * sample_rate / n_fft, fmax=(end - 1) * sample_rate / n_fft)
    filters = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=num_bands, **span)
    membership = torch.from_numpy(np.ascontiguousarray(filters[:, first:end] > 0))
    membership[0, 0] = True
    membership[-1, -1] = True
    uncovered = (~membership.any(dim=0)).nonzero().flatten().tolist()
    if uncovered:
        raise ValueError(
            f"{num_bands} mel bands leave STFT bins {uncovered[:8]}{'...' if len(uncovered) > 8 else ''} uncovered "
            f"(n_fft={n_fft}, sample_rate={sample_rate}); use fewer bands or a larger n_fft"
        )
    return membership


class BandLayout(nn.Module):
    """Gathers band inputs from a spectrum and spreads band masks back over the bins.

    A spectrum here is (b, (f s), t, 2): `bins` frequencies with `channels` interleaved, real/imag last.
    Band k takes the bins `band_bins[k]` of every channel. Holds only non-persistent buffers, so it adds no
    state-dict keys.
    """

    def __init__(self, band_bins: Sequence[torch.Tensor], num_bins: int, channels: int):
        super().__init__()
        self.num_bins = num_bins
        self.channels = channels
        self.bins_per_band = tuple(len(bins) for bins in band_bins)
        bin_indices = torch.cat([torch.as_tensor(bins, dtype=torch.long) for bins in band_bins])
        self.is_partition = bool(torch.equal(bin_indices, torch.arange(num_bins)))

        # row of each (bin, channel) pair in the interleaved (f s) axis
        rows = rearrange(bin_indices * channels, "f -> f 1") + torch.arange(channels)
        self.register_buffer("rows", rearrange(rows, "f s -> (f s)"), persistent=False)
        bands_per_bin = torch.bincount(bin_indices, minlength=num_bins).float()
        if (bands_per_bin == 0).any():
            raise ValueError(f"bins {(bands_per_bin == 0).nonzero().flatten().tolist()} belong to no band")
        self.register_buffer("bands_per_row", repeat(bands_per_bin, "f -> (f s)", s=channels), persistent=False)

    @classmethod
    def contiguous(cls, bins_per_band: Sequence[int], channels: int) -> "BandLayout":
        """Consecutive bands of the given widths, covering every bin once."""
        edges = np.cumsum([0, *bins_per_band]).tolist()
        return cls([torch.arange(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])], edges[-1], channels)

    @classmethod
    def from_membership(cls, membership: torch.Tensor, channels: int) -> "BandLayout":
        """Bands from a (bands, bins) bool matrix; bands may overlap."""
        return cls([row.nonzero().flatten() for row in membership], membership.shape[1], channels)

    @property
    def dim_inputs(self) -> Tuple[int, ...]:
        """Values per band: bins x channels x (real, imag)."""
        return tuple(2 * self.channels * count for count in self.bins_per_band)

    def gather(self, spec: torch.Tensor) -> torch.Tensor:
        """(b, (f s), t, 2) -> (b, t, sum(dim_inputs)), bands in order."""
        if not self.is_partition:
            spec = spec.index_select(1, self.rows)
        return rearrange(spec, "b f t c -> b t (f c)")

    def scatter(self, band_masks: torch.Tensor) -> torch.Tensor:
        """(b, n, t, sum(dim_inputs)) -> (b, n, (f s), t, 2), averaging where bands overlap."""
        masks = rearrange(band_masks, "b n t (f c) -> b n f t c", c=2)
        if self.is_partition:
            return masks
        summed = masks.new_zeros(*masks.shape[:2], self.num_bins * self.channels, *masks.shape[3:])
        summed = summed.index_add(2, self.rows, masks)
        return summed / rearrange(self.bands_per_row, "f -> f 1 1").to(summed.dtype)
