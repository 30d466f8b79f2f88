"""Training loss of BS-RoFormer: time-domain L1 plus a multi-resolution STFT L1 (section 4.3 of the paper)."""

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over window sizes of the mean |STFT(estimate) - STFT(target)|: (..., t), (..., t) -> scalar.

    Each resolution uses n_fft = max(window size, min_n_fft) and a shared hop, as in the reference code;
    with hop_at_least_quarter_window, the hop is max(hop_length, window size // 4) (COMPAT: MSST's
    mel_band_conformer.py).
    """

    def __init__(
        self,
        window_sizes: Sequence[int] = (4096, 2048, 1024, 512, 256),
        hop_length: int = 147,
        min_n_fft: int = 2048,
        normalized: bool = False,
        window_fn: Callable[..., torch.Tensor] = torch.hann_window,
        hop_at_least_quarter_window: bool = False,
    ):
        super().__init__()
        self.hop_at_least_quarter_window = hop_at_least_quarter_window
        self.window_sizes = tuple(window_sizes)
        self.hop_length = hop_length
        self.min_n_fft = min_n_fft
        self.normalized = normalized
        self.window_fn = window_fn

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        estimate = rearrange(estimate, "... t -> (...) t")
        target = rearrange(target, "... t -> (...) t")
        total = estimate.new_zeros(())
        for window_size in self.window_sizes:
            stft_kwargs = dict(
                n_fft=max(window_size, self.min_n_fft),
                win_length=window_size,
                hop_length=max(self.hop_length, window_size // 4) if self.hop_at_least_quarter_window else self.hop_length,
                normalized=self.normalized,
                window=self.window_fn(window_size, device=estimate.device),
                return_complex=True,
            )
            total = total + F.l1_loss(torch.stft(estimate, **stft_kwargs), torch.stft(target, **stft_kwargs))
        return total
