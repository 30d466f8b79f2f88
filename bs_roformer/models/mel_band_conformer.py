"""Mel-Band Conformer (Music-Source-Separation-Training's mel_band_conformer.py): Mel-Band RoFormer's bands
with Conformer blocks (modules/conformer.py) along time and frequency.

What differs from Mel-Band RoFormer besides the blocks: no norm after the backbone (each block ends in
one), the mask MLP depth convention of the BS file (bs_roformer.compat), and the multi-resolution loss hop.
"""

from typing import Any, Callable, ClassVar

from torch import nn

from .bs_conformer import conformer_stack
from .config import ConformerConfig, MelBandsConfig, model_config
from .mel_band_roformer import MelBandRoformer


@model_config
class MelBandConformerConfig(MelBandsConfig, ConformerConfig):
    """Mel-Band Conformer's settings; the defaults are MSST's."""

    model_type: ClassVar[str] = "mel_band_conformer"


class MelBandConformer(MelBandRoformer):
    """Mel-Band Conformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Settings: `MelBandConformerConfig` (keywords, or a config), as in MSST.
    """

    Config = MelBandConformerConfig
    norm_each_transformer = False

    def __init__(self, *args: Any, **settings: Any):
        super().__init__(*args, **settings)
        # COMPAT: mel_band_conformer.py's multi-resolution loss hops by at least a quarter window
        self.multi_stft_loss.hop_at_least_quarter_window = True

    def sequence_model(self, config: ConformerConfig) -> Callable[..., nn.Module]:
        return conformer_stack(config)
