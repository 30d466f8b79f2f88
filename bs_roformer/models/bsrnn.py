"""Band-split RNN (Luo & Yu 2022, "Music Source Separation with Band-split RNN").

What differs from the shared body: non-overlapping bands from a named schema (the paper's `v7` by
default), recurrent (or convolutional) band and sequence modelling instead of the axial transformer,
a norm at the input of each band's mask MLP, and the paper's losses (waveform + STFT L1), summed over
stems for multi-task learning.
"""

from functools import partial
from typing import Optional, Sequence, Tuple, Union

from ..modules.band_rnn import BandSequenceModel
from ..modules.band_schemas import contiguous_bands
from .band_split_model import BandSplitModel, band_layout_for, check_positive_integers


class BSRNN(BandSplitModel):
    """Band-split RNN: (b, t) or (b, s, t) audio -> (b, s, t) or (b, n, s, t) stems.

    Defaults are the paper's: feature dim 128, 12 blocks of BLSTMs with 256 hidden units per direction,
    v7 bands, a 2048-point STFT with hop 512, masks from an MLP with one 512-unit hidden layer, and the
    waveform + STFT L1 loss.

    Keywords of this model (the rest: `BandSplitModel`):
        freqs_per_bands: a band schema name (`bs_roformer.band_schema`) or STFT bins per band.
        depth: band-sequence blocks; hidden: units per direction of each bidirectional layer.
        layer_type: "lstm", "gru" or "conv" (centred 1-D convolutions of `conv_kernel_size`).
        attention_heads: heads of a TF-GridNet-style full-band self-attention after each block (0 = none),
            with `attention_dim` query/key features per band and head.
        loss: "t" (waveform L1), "tf" (STFT L1), "t+tf", "mrstft" (multi-resolution STFT L1), or a "+" mix.
    """

    def __init__(
        self,
        dim: int = 128,
        *,
        depth: int = 12,
        hidden: int = 256,
        freqs_per_bands: Union[str, Sequence[int]] = "v7",
        layer_type: str = "lstm",
        conv_kernel_size: int = 5,
        attention_heads: int = 0,
        attention_dim: int = 4,
        mask_estimator_depth: int = 1,
        mlp_expansion_factor: int = 4,
        stereo: bool = False,
        sample_rate: int = 44100,
        stft_n_fft: int = 2048,
        stft_hop_length: int = 512,
        stft_win_length: Optional[int] = None,
        freq_range: Optional[Tuple[int, int]] = None,
        loss: str = "t+tf",
        zero_dc: bool = False,
        match_input_audio_length: bool = True,
        use_torch_checkpoint: bool = False,
        **shared,
    ):
        check_positive_integers(dim=dim, depth=depth, hidden=hidden)
        channels = 2 if stereo else 1
        make_bands = partial(contiguous_bands, freqs_per_bands, stft_n_fft, sample_rate)
        backbone = BandSequenceModel(
            dim,
            depth=depth,
            hidden=hidden,
            layer_type=layer_type,
            conv_kernel_size=conv_kernel_size,
            attention_heads=attention_heads,
            dim_attention=attention_dim,
            use_torch_checkpoint=use_torch_checkpoint,
        )
        super().__init__(
            dim,
            bands=band_layout_for(make_bands, channels, stft_n_fft, freq_range),
            backbone=backbone,
            final_norm=False,
            mask_estimator_hidden_layers=mask_estimator_depth,
            mask_estimator_norm_each_band=True,
            mlp_expansion_factor=mlp_expansion_factor,
            match_input_audio_length=match_input_audio_length,
            loss=loss,
            sum_stem_losses=True,
            stereo=stereo,
            sample_rate=sample_rate,
            stft_n_fft=stft_n_fft,
            stft_hop_length=stft_hop_length,
            stft_win_length=stft_n_fft if stft_win_length is None else stft_win_length,
            freq_range=freq_range,
            zero_dc=zero_dc,
            use_torch_checkpoint=use_torch_checkpoint,
            **shared,
        )
