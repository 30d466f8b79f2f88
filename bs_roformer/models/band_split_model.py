"""The body shared by every band-split model (BS-RoFormer, Mel-Band RoFormer, ...).

    audio (b, s, t) -> STFT (b, (f s), frames, 2) -> band split (b, frames, bands, dim)
      -> backbone (b, frames, bands, dim) -> per-stem mask estimators -> band masks back to bins
      -> complex masking -> iSTFT -> stems (b, n, s, t)

Models differ in their band layout and their backbone (the sequence modelling between band split and mask
estimation), which the model classes build (`build_bands`, `build_backbone`), and in their settings (their
config dataclass, see `bs_roformer.models.config`).
"""

from typing import Any, ClassVar, Optional, Tuple, Type, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..compat import mask_hidden_layers
from ..modules.band_split import BandSplit
from ..modules.bands import BandLayout
from ..modules.checkpointing import maybe_checkpoint
from ..modules.loss import MultiResolutionSTFTLoss, negative_sdr
from ..modules.mask_heads import mask_estimator_factory
from ..modules.norm import RMSNorm
from ..modules.stft import STFT, complex_multiply
from .config import BandSplitConfig, ConfiguredModel

LossBreakdown = Tuple[torch.Tensor, Tuple[torch.Tensor, ...]]

class BandSplitModel(ConfiguredModel):
    """Band-split masking separator around a backbone; see `BSRoformer`, `MelBandRoformer` and `BSRNN`.

    forward: (b, t) or (b, s, t) audio -> (b, s, t') for one stem, (b, n, s, t') for n stems, where
    t' = t with `match_input_audio_length`, else hop * (t // hop) as in the reference code.

    Built from the settings of `Config` (the family's config dataclass), given as keywords or as a config
    (see `ConfiguredModel`). A family gives `Config`, `build_bands`, `build_backbone` and the two flags
    below; everything else is shared.
    """

    Config: ClassVar[Type[BandSplitConfig]] = BandSplitConfig
    # an RMSNorm between backbone and mask estimators (BS-RoFormer)
    final_norm_after_backbone: ClassVar[bool] = False
    # a norm at the input of each band's mask MLP (BSRNN)
    mask_norm_each_band: ClassVar[bool] = False

    def __init__(self, *args: Any, **settings: Any):
        super().__init__(*args, **settings)
        config = self.config
        self.loss_terms = tuple(config.loss.split("+"))
        self.sum_stem_losses = config.sum_stem_losses

        self.stereo = config.stereo
        self.audio_channels = config.audio_channels
        self.num_stems = config.num_stems
        self.sample_rate = config.sample_rate
        self.match_input_audio_length = config.match_input_audio_length
        self.use_torch_checkpoint = config.use_torch_checkpoint

        backbone = self.build_backbone(config)  # first: the order in which weights are initialised
        self.stft = STFT(
            n_fft=config.stft_n_fft,
            hop_length=config.stft_hop_length,
            win_length=config.stft_n_fft if config.stft_win_length is None else config.stft_win_length,
            normalized=config.stft_normalized,
            window_fn=config.stft_window_fn,
            channels=self.audio_channels,
            freq_range=config.freq_range,
            zero_dc=config.zero_dc,
        )
        bands = self.build_bands(config, self.stft.first_bin, self.stft.end_bin)
        if (bands.channels, bands.num_bins) != (self.audio_channels, self.stft.modelled_bins):
            raise ValueError(
                f"the band layout covers {bands.num_bins} bins x {bands.channels} channel(s), but the model sees "
                f"{self.stft.modelled_bins} bins x {self.audio_channels} channel(s)"
            )
        self.bands = bands
        self.layers = backbone
        self.final_norm = RMSNorm(config.dim) if self.final_norm_after_backbone else nn.Identity()

        self.band_split = BandSplit(config.dim, bands.dim_inputs)
        self._new_mask_estimator = mask_estimator_factory(
            config.mask_estimator,
            config.dim,
            bands.dim_inputs,
            mask_hidden_layers(config),
            config.mlp_expansion_factor,
            norm_each_band=self.mask_norm_each_band,
        )
        self.mask_estimators = nn.ModuleList([self._new_mask_estimator() for _ in range(config.num_stems)])

        self.multi_stft_resolution_loss_weight = config.multi_stft_resolution_loss_weight
        self.multi_stft_loss = MultiResolutionSTFTLoss(
            window_sizes=config.multi_stft_resolutions_window_sizes,
            hop_length=config.multi_stft_hop_size,
            min_n_fft=config.stft_n_fft,
            normalized=config.multi_stft_normalized,
            window_fn=config.multi_stft_window_fn,
        )

    def build_bands(self, config: BandSplitConfig, first_bin: int, end_bin: int) -> BandLayout:
        """The band layout over the modelled STFT bins [first_bin, end_bin)."""
        raise NotImplementedError

    def build_backbone(self, config: BandSplitConfig) -> nn.Module:
        """The sequence modelling between band split and masks: (b, frames, bands, dim) -> the same."""
        raise NotImplementedError

    def freeze_backbone(self) -> None:
        """Stop training everything before the mask estimators (band split, sequence modelling, final norm)."""
        for module in (self.band_split, self.layers, self.final_norm):
            module.requires_grad_(False)

    def replace_mask_heads(self, num_stems: int) -> None:
        """New, freshly initialised mask estimators for `num_stems` stems (transfer to a new set of stems)."""
        self.config = self.config.replace(num_stems=num_stems)
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
        Loss = the sum of the config's `loss` terms, by default L1(estimate, target) +
        multi_stft_resolution_loss_weight * multi-resolution STFT L1; `return_loss_breakdown` also returns the terms.
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
        if name == "sdr":
            return negative_sdr(estimate, target)
        # the STFT is linear: the distance of two transforms is the transform of the difference
        return self.stft(rearrange(estimate - target, "... s t -> (...) s t")).abs().mean()

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

