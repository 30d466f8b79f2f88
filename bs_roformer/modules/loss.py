"""Training losses: BS-RoFormer's multi-resolution STFT L1 (section 4.3 of the paper), and the negative SDR."""

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..metrics import GLOBAL_SDR_EPS


class MeanSpectrumMagnitude(torch.autograd.Function):
    """mean |rfft(frames)| over everything: (..., n) real frames -> scalar.

    Autograd differentiates rfft with a full complex FFT of the zero-extended spectrum; the same gradient
    is an inverse real FFT of half the size, with the bins that irfft counts twice (all but DC and Nyquist)
    halved.
    """

    @staticmethod
    def forward(ctx, frames: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(frames, dim=-1)
        magnitude = spectrum.abs()
        ctx.save_for_backward(spectrum, magnitude)
        ctx.frame_length = frames.shape[-1]
        return magnitude.mean()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        spectrum, magnitude = ctx.saved_tensors
        n = ctx.frame_length
        # d|z|/dz = z / |z|, and 0 at z = 0 as in torch's abs
        grad_spectrum = spectrum / magnitude.clamp_min(torch.finfo(magnitude.dtype).tiny) * (grad / magnitude.numel())
        grad_spectrum[..., 1 : (n - 1) // 2 + 1] *= 0.5
        return torch.fft.irfft(grad_spectrum, n=n, dim=-1) * n


class MultiResolutionSTFTLoss(nn.Module):
    """Sum over window sizes of the mean |STFT(estimate) - STFT(target)|: (..., t), (..., t) -> scalar.

    Each resolution uses n_fft = max(window size, min_n_fft) and a shared hop, as in the reference code
    (a centred, reflect-padded `torch.stft`); with hop_at_least_quarter_window, the hop is
    max(hop_length, window size // 4) (COMPAT: MSST's mel_band_conformer.py).
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
        # The STFT is linear, so STFT(estimate) - STFT(target) = STFT(estimate - target): one transform per
        # resolution instead of two, and none through the target's graph. Frames are cut with `unfold`, whose
        # backward is a dedicated overlap-add kernel, where torch.stft's strided view falls back to a slow
        # generic one (the frames overlap 14-fold at the default hop).
        difference = rearrange(estimate - target, "... t -> (...) 1 t")
        total = difference.new_zeros(())
        for window_size in self.window_sizes:
            n_fft = max(window_size, self.min_n_fft)
            hop = max(self.hop_length, window_size // 4) if self.hop_at_least_quarter_window else self.hop_length
            padded = F.pad(difference, (n_fft // 2, n_fft // 2), mode="reflect")
            frames = rearrange(padded, "n 1 t -> n t").unfold(-1, n_fft, hop)  # (n, frames, n_fft)
            mean_magnitude = MeanSpectrumMagnitude.apply(frames * self._window(window_size, n_fft, difference))
            total = total + (mean_magnitude * n_fft**-0.5 if self.normalized else mean_magnitude)
        return total

    def _window(self, window_size: int, n_fft: int, like: torch.Tensor) -> torch.Tensor:
        """The window, zero-padded on both sides to n_fft as torch.stft centres a shorter window."""
        window = self.window_fn(window_size, device=like.device).to(like.dtype)
        left = (n_fft - window_size) // 2
        return F.pad(window, (left, n_fft - window_size - left))


def negative_sdr(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Minus the SDR in dB of each stem over the batch, averaged over stems: (b, [n,] c, t) twice -> scalar.

    The MDX global SDR (metrics.global_sdr, its epsilon too) with the batch's chunks as one track: their
    energies add up before the ratio, as a track's passages do in the metric, so a silent chunk adds its error
    without dominating (a ratio per chunk would be unbounded there). In dB, every stem counts by its relative
    error, a quiet one as much as a loud one. Differentiable, in at least float32 (bf16 would round the sums).
    """
    dtype = torch.promote_types(estimate.dtype, torch.float32)
    estimate, target = estimate.to(dtype), target.to(dtype)
    per_stem = (0, -2, -1)  # batch, channels, time
    signal = target.square().sum(dim=per_stem)
    error = (target - estimate).square().sum(dim=per_stem)
    return (10 * torch.log10((error + GLOBAL_SDR_EPS) / (signal + GLOBAL_SDR_EPS))).mean()
