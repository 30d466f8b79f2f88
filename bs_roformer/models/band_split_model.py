"""The body shared by every band-split model (BS-RoFormer, Mel-Band RoFormer, ...).

    audio (b, s, t) -> STFT (b, (f s), frames, 2) -> band split (b, frames, bands, dim)
      -> backbone (b, frames, bands, dim) -> per-stem mask estimators -> band masks back to bins
      -> complex masking -> iSTFT -> stems (b, n, s, t)

Models differ in their band layout and their backbone (the sequence modelling between band split and mask
estimation); both are given to `BandSplitModel` by the model classes.
"""

from functools import partial
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..modules.band_split import BandSplit
from ..modules.bands import BandLayout
from ..modules.checkpointing import maybe_checkpoint
from ..modules.loss import MultiResolutionSTFTLoss
from ..modules.mask_estimator import MaskEstimator
from ..modules.norm import RMSNorm
from ..modules.stft import STFT, complex_multiply, frequency_range_bins

LossBreakdown = Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]

# L1 distances between estimate and target that a training loss can add up (`loss="t+tf"`, ...)
LOSS_TERMS = {
    "t": "waveform",
    "tf": "real and imaginary parts of the model's own STFT",
    "mrstft": "multi-resolution STFT (weighted by multi_stft_resolution_loss_weight)",
}


def band_layout_for(
    make_bands: Callable[[int, int, int], BandLayout], channels: int, n_fft: int, freq_range: Optional[Tuple[int, int]]
) -> BandLayout:
    """Build a model's bands over the bins it models: make_bands(channels, first_bin, end_bin)."""
    return make_bands(channels, *frequency_range_bins(n_fft, freq_range))


class BandSplitModel(nn.Module):
    """Band-split masking separator around a backbone; see `BSRoformer` and `MelBandRoformer`.

    forward: (b, t) or (b, s, t) audio -> (b, s, t') for one stem, (b, n, s, t') for n stems, where
    t' = t with `match_input_audio_length`, else hop * (t // hop) as in the reference code.

    bands: the band layout over the modelled bins (see `band_layout_for`).
    backbone: (b, frames, bands, dim) -> (b, frames, bands, dim); registered as `layers`.
    final_norm: an RMSNorm between backbone and mask estimators.
    mask_estimator_hidden_layers: hidden layers of each band's mask MLP.
    mask_estimator_norm_each_band: a norm at the input of each band's mask MLP (BSRNN).
    loss: the L1 terms of the training loss joined by "+", from `LOSS_TERMS`.
    sum_stem_losses: the loss is the sum of the per-stem losses (multi-task learning) instead of their mean.
    """

    def __init__(
        self,
        dim: int,
        *,
        bands: BandLayout,
        backbone: nn.Module,
        final_norm: bool,
        mask_estimator_hidden_layers: int,
        match_input_audio_length: bool,
        mask_estimator_norm_each_band: bool = False,
        loss: str = "t+mrstft",
        sum_stem_losses: bool = False,
        stereo: bool = False,
        num_stems: int = 1,
        use_torch_checkpoint: bool = False,
        mlp_expansion_factor: int = 4,
        sample_rate: int = 44100,
        stft_n_fft: int = 2048,
        stft_hop_length: int = 512,
        stft_win_length: int = 2048,
        stft_normalized: bool = False,
        stft_window_fn: Optional[Callable[..., torch.Tensor]] = None,
        freq_range: Optional[Tuple[int, int]] = None,
        zero_dc: bool = True,
        multi_stft_resolution_loss_weight: float = 1.0,
        multi_stft_resolutions_window_sizes: Sequence[int] = (4096, 2048, 1024, 512, 256),
        multi_stft_hop_size: int = 147,
        multi_stft_normalized: bool = False,
        multi_stft_window_fn: Callable[..., torch.Tensor] = torch.hann_window,
    ):
        super().__init__()
        check_positive_integers(num_stems=num_stems)
        self.loss_terms = tuple(loss.split("+"))
        if not self.loss_terms or any(term not in LOSS_TERMS for term in self.loss_terms):
            raise ValueError(f"loss must join terms from {', '.join(LOSS_TERMS)} with '+', e.g. 't+tf'; got {loss!r}")
        self.sum_stem_losses = sum_stem_losses

        self.stereo = stereo
        self.audio_channels = 2 if stereo else 1
        self.num_stems = num_stems
        self.sample_rate = sample_rate
        self.match_input_audio_length = match_input_audio_length
        self.use_torch_checkpoint = use_torch_checkpoint

        self.stft = STFT(
            n_fft=stft_n_fft,
            hop_length=stft_hop_length,
            win_length=stft_win_length,
            normalized=stft_normalized,
            window_fn=stft_window_fn,
            channels=self.audio_channels,
            freq_range=freq_range,
            zero_dc=zero_dc,
        )
        if (bands.channels, bands.num_bins) != (self.audio_channels, self.stft.modelled_bins):
            raise ValueError(
                f"the band layout covers {bands.num_bins} bins x {bands.channels} channel(s), but the model sees "
                f"{self.stft.modelled_bins} bins x {self.audio_channels} channel(s)"
            )
        self.bands = bands
        self.layers = backbone
        self.final_norm = RMSNorm(dim) if final_norm else nn.Identity()

        self.band_split = BandSplit(dim, bands.dim_inputs)
        self._new_mask_estimator = partial(
            MaskEstimator,
            dim,
            bands.dim_inputs,
            mask_estimator_hidden_layers,
            mlp_expansion_factor,
            norm_each_band=mask_estimator_norm_each_band,
        )
        self.mask_estimators = nn.ModuleList([self._new_mask_estimator() for _ in range(num_stems)])

        self.multi_stft_resolution_loss_weight = multi_stft_resolution_loss_weight
        self.multi_stft_loss = MultiResolutionSTFTLoss(
            window_sizes=multi_stft_resolutions_window_sizes,
            hop_length=multi_stft_hop_size,
            min_n_fft=stft_n_fft,
            normalized=multi_stft_normalized,
            window_fn=multi_stft_window_fn,
        )

    def freeze_backbone(self) -> None:
        """Stop training everything before the mask estimators (band split, sequence modelling, final norm)."""
        for module in (self.band_split, self.layers, self.final_norm):
            module.requires_grad_(False)

    def replace_mask_heads(self, num_stems: int) -> None:
        """New, freshly initialised mask estimators for `num_stems` stems (transfer to a new set of stems)."""
        check_positive_integers(num_stems=num_stems)
        device = self.band_split.to_features[0][1].weight.device
        self.mask_estimators = nn.ModuleList([self._new_mask_estimator() for _ in range(num_stems)]).to(device)
        self.num_stems = num_stems

    @property
    def stft_hop_length(self) -> int:
        return self.stft.hop_length

    @property
    def stft_n_fft(self) -> int:
        return self.stft.n_fft

    def forward(
        self,
        raw_audio: torch.Tensor,
        target: Optional[torch.Tensor] = None,
        return_loss_breakdown: bool = False,
    ) -> Union[torch.Tensor, LossBreakdown]:
        """Separate `raw_audio` (b, t) or (b, s, t); with `target`, return the training loss instead.

        target: (b, s, t) for one stem (or (b, t) for mono), (b, n, s, t) for n stems, t as the input.
        Loss = L1(estimate, target) + multi_stft_resolution_loss_weight * multi-resolution STFT L1;
        `return_loss_breakdown` also returns (L1, multi-resolution STFT L1).
        """
        audio = self._check_audio(raw_audio)
        spec = self.stft(audio)  # (b, (f s), frames, 2)
        stems = self.stems_from_masks(spec, self.masks(spec), audio.shape[-1])
        if target is None:
            return stems
        return self._loss(stems, self._check_target(target, stems, audio.shape[-1]), return_loss_breakdown)

    def masks(self, spec: torch.Tensor) -> torch.Tensor:
        """The network between STFT and iSTFT: spectrum (b, (f s), frames, 2) -> masks (b, n, (f s), frames, 2).

        The part ONNX export and torch.compile take (bs_roformer.inference.onnx_export): no FFT inside.
        """
        x = self.bands.gather(spec).to(self.band_split.to_features[0][1].weight.dtype)
        x = maybe_checkpoint(self.use_torch_checkpoint, self.band_split, x)  # (b, frames, bands, dim)
        x = self.layers(x)
        x = self.final_norm(x)

        band_masks = torch.stack(
            [maybe_checkpoint(self.use_torch_checkpoint, estimator, x) for estimator in self.mask_estimators], dim=1
        )  # (b, n, frames, band values)
        return self.bands.scatter(band_masks)

    def stems_from_masks(self, spec: torch.Tensor, masks: torch.Tensor, input_length: int) -> torch.Tensor:
        """Masked spectrum -> iSTFT: (b, (f s), frames, 2), (b, n, (f s), frames, 2) -> stems as `forward`."""
        stems_spec = complex_multiply(rearrange(spec, "b f t c -> b 1 f t c"), masks)
        length = input_length if self.match_input_audio_length else None
        stems = self.stft.inverse(stems_spec, length=length)  # (b, n, s, t')
        return rearrange(stems, "b 1 s t -> b s t") if self.num_stems == 1 else stems

    def _loss(self, estimate: torch.Tensor, target: torch.Tensor, return_loss_breakdown: bool):
        terms = tuple(self._loss_term(name, estimate, target) for name in self.loss_terms)
        weights = [self.multi_stft_resolution_loss_weight if name == "mrstft" else 1.0 for name in self.loss_terms]
        total = sum(term * weight for term, weight in zip(terms, weights))
        if self.sum_stem_losses:
            # every stem has as many values, so the sum of per-stem means is num_stems x the overall mean
            total = total * self.num_stems
        return (total, terms) if return_loss_breakdown else total

    def _loss_term(self, name: str, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if name == "t":
            return F.l1_loss(estimate, target)
        if name == "mrstft":
            return self.multi_stft_loss(estimate, target)
        stems_as_batch = "... s t -> (...) s t"
        return F.l1_loss(self.stft(rearrange(estimate, stems_as_batch)), self.stft(rearrange(target, stems_as_batch)))

    def _check_audio(self, raw_audio: torch.Tensor) -> torch.Tensor:
        """Validate the input and return it as (b, s, t)."""
        if not torch.is_tensor(raw_audio):
            raise TypeError(f"audio must be a torch.Tensor of shape (batch, channels, time), got {type(raw_audio).__name__}")
        if not raw_audio.is_floating_point():
            raise TypeError(
                f"audio must be a floating-point tensor, got {raw_audio.dtype}; "
                "convert integer PCM first, e.g. audio.float() / 32768 for int16"
            )
        if raw_audio.ndim == 2:
            raw_audio = rearrange(raw_audio, "b t -> b 1 t")
        expected = f"(batch, {self.audio_channels}, time)" + ("" if self.stereo else " or (batch, time)")
        kind = "stereo=True" if self.stereo else "stereo=False"
        if raw_audio.ndim != 3:
            raise ValueError(f"audio must have shape {expected}, got {tuple(raw_audio.shape)}")
        batch, channels, length = raw_audio.shape
        if channels != self.audio_channels:
            hint = " (add a batch axis with audio[None] if this is one clip)" if raw_audio.shape[0] == 2 else ""
            raise ValueError(
                f"a model built with {kind} expects {self.audio_channels} channel(s), shape {expected}; "
                f"got {channels} channel(s) in audio of shape {tuple(raw_audio.shape)}{hint}"
            )
        if length < self.stft.n_fft:
            raise ValueError(
                f"audio is {length} samples long, shorter than the STFT window ({self.stft.n_fft} samples); "
                "pad it, or separate it with bs_roformer's chunked separator, which pads short audio"
            )
        return raw_audio

    def _check_target(self, target: torch.Tensor, estimate: torch.Tensor, input_length: int) -> torch.Tensor:
        """Validate the target against the estimate's shape and trim it to the estimate's length."""
        if not torch.is_tensor(target) or not target.is_floating_point():
            raise TypeError(f"target must be a floating-point tensor, got {getattr(target, 'dtype', type(target))}")
        if self.num_stems == 1 and target.ndim == 2 and not self.stereo:
            target = rearrange(target, "b t -> b 1 t")
        if self.num_stems == 1 and target.ndim == 4 and target.shape[1] == 1:
            target = rearrange(target, "b 1 s t -> b s t")
        expected = (*estimate.shape[:-1], input_length)
        if tuple(target.shape) != expected:
            names = "(batch, channels, time)" if self.num_stems == 1 else "(batch, stems, channels, time)"
            raise ValueError(
                f"target must have shape {names} = {expected} to match the model output for this input; "
                f"got {tuple(target.shape)}"
            )
        # the iSTFT drops the last partial hop unless match_input_audio_length is set
        return target[..., : estimate.shape[-1]]


def check_positive_integers(**values) -> None:
    """A clear error for the first keyword that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
