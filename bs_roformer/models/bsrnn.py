"""Band-split RNN (Luo & Yu 2022, "Music Source Separation with Band-split RNN").

What differs from the shared body: non-overlapping bands from a named schema (the paper's `v7` by
default), recurrent (or convolutional) band and sequence modelling instead of the axial transformer,
a norm at the input of each band's mask MLP, and the paper's losses (waveform + STFT L1), summed over
stems for multi-task learning.
"""

from collections.abc import Sequence
from typing import ClassVar, Optional, Union

from torch import nn

from ..modules.band_rnn import BandSequenceModel
from ..modules.band_schemas import contiguous_bands
from ..modules.bands import BandLayout
from .band_split_model import BandSplitModel
from .config import ContiguousBandsConfig, check_positive_integers, model_config, setting


@model_config
class BSRNNConfig(ContiguousBandsConfig):
    """BSRNN's settings; the defaults are the paper's: feature dim 128, 12 blocks of BLSTMs with 256 hidden
    units per direction, v7 bands, a 2048-point STFT with hop 512, masks from an MLP with one 512-unit
    hidden layer, and the waveform + STFT L1 loss summed over stems."""

    model_type: ClassVar[str] = "bsrnn"

    dim: int = 128
    depth: int = setting(12, "band-sequence blocks (across time, then across bands)")
    hidden: int = setting(256, "units per direction of each bidirectional layer")
    freqs_per_bands: Union[str, Sequence[int]] = "v7"
    layer_type: str = setting("lstm", '"lstm", "gru" or "conv" (centred 1-D convolutions of conv_kernel_size)')
    conv_kernel_size: int = setting(5, "kernel size of the conv layers (odd)")
    attention_heads: int = setting(0, "heads of a TF-GridNet-style full-band self-attention after each block (0: none)")
    attention_dim: int = setting(4, "query/key features per band and head of that attention")
    mask_estimator_depth: int = 1
    stft_win_length: Optional[int] = None
    loss: str = "t+tf"
    sum_stem_losses: bool = True
    zero_dc: bool = False

    def validate(self) -> None:
        super().validate()
        check_positive_integers(depth=self.depth, hidden=self.hidden)


class BSRNN(BandSplitModel):
    """Band-split RNN: (b, t) or (b, s, t) audio -> (b, s, t) or (b, n, s, t) stems.

    Settings: `BSRNNConfig` (keywords, or a config), the paper's by default.
    """

    Config = BSRNNConfig
    mask_norm_each_band = True

    def build_bands(self, config: BSRNNConfig, first_bin: int, end_bin: int) -> BandLayout:
        return contiguous_bands(
            config.freqs_per_bands, config.stft_n_fft, config.sample_rate, config.audio_channels, first_bin, end_bin
        )

    def build_backbone(self, config: BSRNNConfig) -> nn.Module:
        return BandSequenceModel(
            config.dim,
            depth=config.depth,
            hidden=config.hidden,
            layer_type=config.layer_type,
            conv_kernel_size=config.conv_kernel_size,
            attention_heads=config.attention_heads,
            dim_attention=config.attention_dim,
            use_torch_checkpoint=config.use_torch_checkpoint,
        )
