"""BS-RoFormer (Lu et al. 2023, "Music Source Separation with Band-Split RoPE Transformer").

What differs from the shared body: contiguous, non-overlapping bands given by `freqs_per_bands`, one final
norm after the axial transformer, and the defaults of this model file.
"""

from typing import ClassVar, Optional

from ..modules.band_schemas import BS_ROFORMER_BINS, contiguous_bands
from ..modules.bands import BandLayout
from .band_split_roformer import BandSplitRoformer
from .config import ContiguousBandsConfig, RoformerConfig, model_config, setting

DEFAULT_FREQS_PER_BANDS = BS_ROFORMER_BINS


@model_config
class BSRoformerConfig(ContiguousBandsConfig, RoformerConfig):
    """BS-RoFormer's settings; the defaults are MSST's (upstream 0.5.1: value_residual=True, zero_dc=False,
    match_input_audio_length=False)."""

    model_type: ClassVar[str] = "bs_roformer"

    depth: Optional[int] = None
    # COMPAT: the original BS-RoFormer SW export's config names depth num_layers
    num_layers: Optional[int] = setting(None, "another name of depth (the BS-RoFormer SW export's config)")
    mask_estimator_depth: int = 2
    # COMPAT: MSST's BSRoformer always restores the input length in its iSTFT; upstream 0.5.1 does not.
    match_input_audio_length: bool = True

    def validate(self) -> None:
        if self.depth is None and self.num_layers is None:
            raise TypeError("missing the keyword depth (the number of axial layers; num_layers is accepted as its alias)")
        if None not in (self.depth, self.num_layers) and self.depth != self.num_layers:
            raise ValueError(
                f"depth={self.depth} and num_layers={self.num_layers} disagree: num_layers is another name of depth; give one"
            )
        # one name from here on, so configs of the same model compare equal
        object.__setattr__(self, "depth", self.num_layers if self.depth is None else self.depth)
        object.__setattr__(self, "num_layers", None)
        super().validate()


class BSRoformer(BandSplitRoformer):
    """Band-Split RoPE Transformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Settings: `BSRoformerConfig` (keywords, or a config). Defaults follow Music-Source-Separation-Training
    (MSST), the code that trained the published checkpoints, so `BSRoformer(**config["model"])` with one of
    its YAML configs builds the model its checkpoint was trained with. Upstream bs-roformer 0.5.1 is the
    same model with `value_residual=True, zero_dc=False, match_input_audio_length=False`.
    """

    Config = BSRoformerConfig
    final_norm_after_backbone = True

    def build_bands(self, config: ContiguousBandsConfig, first_bin: int, end_bin: int) -> BandLayout:
        return contiguous_bands(
            config.freqs_per_bands, config.stft_n_fft, config.sample_rate, config.audio_channels, first_bin, end_bin
        )
