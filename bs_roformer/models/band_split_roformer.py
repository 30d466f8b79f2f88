"""The body shared by BS-RoFormer and Mel-Band RoFormer.

    audio (b, s, t) -> STFT (b, (f s), frames, 2) -> band split (b, frames, bands, dim)
      -> axial transformer -> per-stem mask estimators -> band masks back to bins
      -> complex masking -> iSTFT -> stems (b, n, s, t)

The two models differ only in their band layout and in three settings their checkpoints depend on (mask
MLP depth, where the transformer output is normalised, the layer defaults); those live in the model files.
"""

from typing import Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..modules.axial_transformer import AxialTransformer
from ..modules.band_split import BandSplit
from ..modules.bands import BandLayout
from ..modules.checkpointing import maybe_checkpoint
from ..modules.loss import MultiResolutionSTFTLoss
from ..modules.mask_estimator import MaskEstimator
from ..modules.norm import RMSNorm
from ..modules.stft import STFT, complex_multiply

LossBreakdown = Tuple[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


class BandSplitRoformer(nn.Module):
    """Band-split RoPE transformer for source separation; see `BSRoformer` and `MelBandRoformer`.

    forward: (b, t) or (b, s, t) audio -> (b, s, t') for one stem, (b, n, s, t') for n stems, where
    t' = t with `match_input_audio_length`, else hop * (t // hop) as in the reference code.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        band_layout: Callable[[int, int, int], BandLayout],
        mask_estimator_hidden_layers: int,
        norm_each_transformer: bool,
        match_input_audio_length: bool,
        attn_dropout: float,
        ff_dropout: float,
        stereo: bool = False,
        num_stems: int = 1,
        time_transformer_depth: int = 2,
        freq_transformer_depth: int = 2,
        linear_transformer_depth: int = 0,
        dim_head: int = 64,
        heads: int = 8,
        flash_attn: bool = True,
        linear_flash_attn: Optional[bool] = None,
        value_residual: bool = False,
        skip_connection: bool = False,
        use_torch_checkpoint: bool = False,
        mlp_expansion_factor: int = 4,
        sample_rate: int = 44100,
        dim_freqs_in: int = 1025,
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
        for name, value in (("dim", dim), ("depth", depth), ("num_stems", num_stems), ("heads", heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        self.stereo = stereo
        self.audio_channels = 2 if stereo else 1
        self.num_stems = num_stems
        self.sample_rate = sample_rate
        self.match_input_audio_length = match_input_audio_length
        self.use_torch_checkpoint = use_torch_checkpoint
        del dim_freqs_in  # accepted for config compatibility: the bin count follows from stft_n_fft

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
        self.bands = band_layout(self.audio_channels, self.stft.first_bin, self.stft.end_bin)

        self.layers = AxialTransformer(
            dim=dim,
            depth=depth,
            time_transformer_depth=time_transformer_depth,
            freq_transformer_depth=freq_transformer_depth,
            linear_transformer_depth=linear_transformer_depth,
            dim_head=dim_head,
            heads=heads,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            flash_attn=flash_attn,
            linear_flash_attn=linear_flash_attn,
            norm_output=norm_each_transformer,
            value_residual=value_residual,
            skip_connection=skip_connection,
            use_torch_checkpoint=use_torch_checkpoint,
        )
        self.final_norm = nn.Identity() if norm_each_transformer else RMSNorm(dim)

        self.band_split = BandSplit(dim, self.bands.dim_inputs)
        self.mask_estimators = nn.ModuleList(
            [
                MaskEstimator(dim, self.bands.dim_inputs, mask_estimator_hidden_layers, mlp_expansion_factor)
                for _ in range(num_stems)
            ]
        )

        self.multi_stft_resolution_loss_weight = multi_stft_resolution_loss_weight
        self.multi_stft_loss = MultiResolutionSTFTLoss(
            window_sizes=multi_stft_resolutions_window_sizes,
            hop_length=multi_stft_hop_size,
            min_n_fft=stft_n_fft,
            normalized=multi_stft_normalized,
            window_fn=multi_stft_window_fn,
        )

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

        x = self.bands.gather(spec).to(self.band_split.to_features[0][1].weight.dtype)
        x = maybe_checkpoint(self.use_torch_checkpoint, self.band_split, x)  # (b, frames, bands, dim)
        x = self.layers(x)
        x = self.final_norm(x)

        band_masks = torch.stack(
            [maybe_checkpoint(self.use_torch_checkpoint, estimator, x) for estimator in self.mask_estimators], dim=1
        )  # (b, n, frames, band values)
        masks = self.bands.scatter(band_masks)  # (b, n, (f s), frames, 2)
        stems_spec = complex_multiply(rearrange(spec, "b f t c -> b 1 f t c"), masks)

        length = audio.shape[-1] if self.match_input_audio_length else None
        stems = self.stft.inverse(stems_spec, length=length)  # (b, n, s, t')
        if self.num_stems == 1:
            stems = rearrange(stems, "b 1 s t -> b s t")

        if target is None:
            return stems
        return self._loss(stems, self._check_target(target, stems, audio.shape[-1]), return_loss_breakdown)

    def _loss(self, estimate: torch.Tensor, target: torch.Tensor, return_loss_breakdown: bool):
        l1 = F.l1_loss(estimate, target)
        multi_stft = self.multi_stft_loss(estimate, target)
        total = l1 + multi_stft * self.multi_stft_resolution_loss_weight
        return (total, (l1, multi_stft)) if return_loss_breakdown else total

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
