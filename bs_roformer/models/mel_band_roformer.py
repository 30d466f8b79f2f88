"""Mel-Band RoFormer (Wang et al. 2023, "Mel-Band RoFormer for Music Source Separation").

What differs from the shared body: overlapping bands from a mel filter bank (masks averaged where bands
overlap), a norm at the output of every transformer instead of one final norm, and the mask MLP depth
convention and dropout defaults of this model file.
"""

from functools import partial
from typing import Optional, Tuple

from ..modules.bands import BandLayout, mel_band_membership
from .band_split_model import band_layout_for
from .band_split_roformer import BandSplitRoformer


def mel_bands(sample_rate: int, n_fft: int, num_bands: int, channels: int, first_bin: int, end_bin: int) -> BandLayout:
    bins = None if (first_bin, end_bin) == (0, n_fft // 2 + 1) else (first_bin, end_bin)
    return BandLayout.from_membership(mel_band_membership(sample_rate, n_fft, num_bands, bins), channels)


class MelBandRoformer(BandSplitRoformer):
    """Mel-Band RoPE Transformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Defaults follow Music-Source-Separation-Training (MSST), the code that trained the published
    checkpoints, so `MelBandRoformer(**config["model"])` with one of its YAML configs builds the model its
    checkpoint was trained with. Upstream bs-roformer 0.5.1 is the same model with
    `linear_transformer_depth=1, zero_dc=False` (its default linear layer).

    Keywords of this model (the rest: `BandSplitRoformer`, `BandSplitModel`):
        num_bands: number of overlapping mel bands (librosa mel filter bank at `sample_rate`).
        freq_range: (first, end) STFT bins to model (-1 = open end); the mel bands span only those bins.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        num_bands: int = 60,
        sample_rate: int = 44100,
        freq_range: Optional[Tuple[int, int]] = None,
        stereo: bool = False,
        stft_n_fft: int = 2048,
        attn_dropout: float = 0.1,
        ff_dropout: float = 0.1,
        mask_estimator_depth: int = 1,
        match_input_audio_length: bool = False,
        **shared,
    ):
        channels = 2 if stereo else 1
        bands = band_layout_for(partial(mel_bands, sample_rate, stft_n_fft, num_bands), channels, stft_n_fft, freq_range)
        super().__init__(
            dim,
            depth=depth,
            bands=bands,
            norm_each_transformer=True,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            # COMPAT: every lineage's Mel model file builds mask_estimator_depth hidden layers
            # (the BS file builds mask_estimator_depth - 1; lucidrains/BS-RoFormer issue #48).
            mask_estimator_hidden_layers=mask_estimator_depth,
            match_input_audio_length=match_input_audio_length,
            sample_rate=sample_rate,
            freq_range=freq_range,
            stereo=stereo,
            stft_n_fft=stft_n_fft,
            **shared,
        )
