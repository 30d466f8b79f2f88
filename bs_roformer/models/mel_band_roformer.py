"""Mel-Band RoFormer (Wang et al. 2023, "Mel-Band RoFormer for Music Source Separation").

What differs from the shared body: overlapping bands from a mel filter bank (masks averaged where bands
overlap), a norm at the output of every transformer instead of one final norm, and the defaults of this
model file.
"""

from typing import ClassVar

from ..modules.bands import BandLayout, mel_band_membership
from .band_split_roformer import BandSplitRoformer
from .config import MelBandsConfig, RoformerConfig, model_config


@model_config
class MelBandRoformerConfig(MelBandsConfig, RoformerConfig):
    """Mel-Band RoFormer's settings; the defaults are MSST's (upstream 0.5.1: linear_transformer_depth=1,
    zero_dc=False)."""

    model_type: ClassVar[str] = "mel_band_roformer"


class MelBandRoformer(BandSplitRoformer):
    """Mel-Band RoPE Transformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Settings: `MelBandRoformerConfig` (keywords, or a config). Defaults follow Music-Source-Separation-Training
    (MSST), the code that trained the published checkpoints, so `MelBandRoformer(**config["model"])` with one
    of its YAML configs builds the model its checkpoint was trained with. Upstream bs-roformer 0.5.1 is the
    same model with `linear_transformer_depth=1, zero_dc=False` (its default linear layer). With freq_range,
    the mel bands span only the modelled bins.
    """

    Config = MelBandRoformerConfig
    norm_each_transformer = True

    def build_bands(self, config: MelBandsConfig, first_bin: int, end_bin: int) -> BandLayout:
        n_fft = config.stft_n_fft
        bins = None if (first_bin, end_bin) == (0, n_fft // 2 + 1) else (first_bin, end_bin)
        membership = mel_band_membership(config.sample_rate, n_fft, config.num_bands, bins)
        return BandLayout.from_membership(membership, config.audio_channels)
