"""STFT front end shared by every model: audio <-> complex spectra, stereo folded into frequency.

Spectra are kept as real tensors with a trailing (real, imag) axis, so masking needs no complex dtype on
the accelerator. The channels of a bin are interleaved along frequency, `(f s)`, as in the reference
code, so each band sees the same bins of both channels. On MPS the transforms run on the CPU, because
that backend lacks some complex operations.
"""

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def frequency_range_bins(n_fft: int, freq_range: Optional[Tuple[int, int]]) -> Tuple[int, int]:
    """First and one-past-last STFT bin of the modelled range.

    freq_range is (first, end) in bins, with -1 for an open end, as in later upstream bs-roformer releases.
    """
    num_bins = n_fft // 2 + 1
    first, end = (-1, -1) if freq_range is None else freq_range
    first = 0 if first == -1 else first
    end = num_bins if end == -1 else end
    if not 0 <= first < end <= num_bins:
        raise ValueError(
            f"freq_range={freq_range} must satisfy 0 <= first < end <= {num_bins} "
            f"(bins of a {n_fft}-point STFT; -1 leaves an end open)"
        )
    return first, end


def complex_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of complex numbers stored as (..., 2) real/imag pairs; broadcasts like `*`."""
    a_re, a_im = a.unbind(dim=-1)
    b_re, b_im = b.unbind(dim=-1)
    return torch.stack((a_re * b_re - a_im * b_im, a_re * b_im + a_im * b_re), dim=-1)


def _transform_device(device: torch.device) -> torch.device:
    return torch.device("cpu") if device.type == "mps" else device


class STFT(nn.Module):
    """(b, s, t) audio <-> (b, (f s), frames, 2) spectra over the modelled frequency range.

    zero_dc: zero the DC bin of the spectrum given to `inverse` (Music-Source-Separation-Training).
    """

    def __init__(
        self,
        *,
        n_fft: int,
        hop_length: int,
        win_length: int,
        normalized: bool = False,
        window_fn: Optional[Callable[..., torch.Tensor]] = None,
        channels: int = 1,
        freq_range: Optional[Tuple[int, int]] = None,
        zero_dc: bool = False,
    ):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.normalized = normalized
        self.channels = channels
        self.zero_dc = zero_dc
        self.num_bins = n_fft // 2 + 1
        self.first_bin, self.end_bin = frequency_range_bins(n_fft, freq_range)
        window_fn = torch.hann_window if window_fn is None else window_fn
        self.register_buffer("window", window_fn(win_length).float(), persistent=False)

    @property
    def modelled_bins(self) -> int:
        return self.end_bin - self.first_bin

    def _kwargs(self, like: torch.Tensor) -> dict:
        return dict(
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            normalized=self.normalized,
            window=self.window.to(like),
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        # transforms run in float32 at least, whatever the model's precision
        dtype = torch.promote_types(audio.dtype, torch.float32)
        waves = rearrange(audio, "b s t -> (b s) t").to(device=_transform_device(audio.device), dtype=dtype)
        spec = torch.stft(waves, **self._kwargs(waves), return_complex=True)
        spec = torch.view_as_real(spec)[:, self.first_bin : self.end_bin]
        spec = rearrange(spec, "(b s) f t c -> b (f s) t c", s=self.channels)
        return spec.to(audio.device)

    def inverse(self, spec: torch.Tensor, length: Optional[int] = None) -> torch.Tensor:
        """(b, n, (f s), frames, 2) -> (b, n, s, samples); samples = length, or hop * (frames - 1)."""
        batch, stems = spec.shape[:2]
        out_device = spec.device
        dtype = torch.promote_types(spec.dtype, torch.float32)
        spec = rearrange(spec, "b n (f s) t c -> (b n s) f t c", s=self.channels)
        spec = spec.to(device=_transform_device(out_device), dtype=dtype)

        first_bin = self.first_bin
        if self.zero_dc and first_bin == 0:
            spec, first_bin = spec[:, 1:], 1
        if (first_bin, self.end_bin) != (0, self.num_bins):
            spec = F.pad(spec, (0, 0, 0, 0, first_bin, self.num_bins - self.end_bin))

        audio = torch.istft(torch.view_as_complex(spec.contiguous()), **self._kwargs(spec), length=length)
        return rearrange(audio, "(b n s) t -> b n s t", b=batch, n=stems).to(out_device)


def reflect_indices(start: int, stop: int, length: int) -> torch.Tensor:
    """Indices into a signal of `length` samples for positions start..stop-1, mirrored at both ends like
    numpy's (and librosa < 0.9's) reflect padding, repeatedly for signals shorter than the padding."""
    positions = torch.arange(start, stop)
    if length == 1:
        return torch.zeros_like(positions)
    period = 2 * (length - 1)
    positions = positions.remainder(period)
    return torch.where(positions < length, positions, period - positions)


def tail_frames(n_fft: int, hop_length: int) -> int:
    """Frames to add past a centred STFT's own (1 + length // hop) so that its overlap-add covers the last
    partial hop with two windows: with hop >= n_fft / 2 only the tail of the last window reaches there
    (about 1e-11 of it at hop = n_fft / 2), and the inverse is noise. The added frame starts where the
    own frames' complete overlap ends, so it changes nothing before; with hop <= n_fft / 4 the own frames
    cover the end well and none is added."""
    return 1 if 2 * hop_length >= n_fft else 0


def centred_stft(samples: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Frames of already centre-padded samples: (..., n_fft + hop * (frames - 1)) -> (..., n_fft // 2 + 1, frames)
    complex, float32 at least."""
    dtype = torch.promote_types(samples.dtype, torch.float32)
    flat = samples.to(dtype).reshape(-1, samples.shape[-1])
    spec = torch.stft(flat, n_fft, hop_length, window=window.to(flat), center=False, return_complex=True)
    return spec.reshape(*samples.shape[:-1], *spec.shape[-2:])
