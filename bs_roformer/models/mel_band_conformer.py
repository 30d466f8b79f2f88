"""Mel-Band Conformer (Music-Source-Separation-Training's mel_band_conformer.py): Mel-Band RoFormer's bands
with Conformer blocks (modules/conformer.py) along time and frequency.

What differs from Mel-Band RoFormer besides the blocks: no norm after the backbone (each block ends in
one), the mask MLP depth convention of the BS file, and the multi-resolution loss hop.
"""

from functools import partial
from typing import Optional, Tuple

from .band_split_model import band_layout_for
from .band_split_roformer import BandSplitRoformer
from .bs_conformer import conformer_stack
from .mel_band_roformer import mel_bands


class MelBandConformer(BandSplitRoformer):
    """Mel-Band Conformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Keywords as `BSConformer`'s Conformer keywords plus `MelBandRoformer`'s band keywords (num_bands,
    sample_rate, freq_range); defaults as in MSST.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        time_conformer_depth: int = 2,
        freq_conformer_depth: int = 2,
        linear_conformer_depth: int = 0,
        ff_mult: int = 4,
        conv_expansion_factor: int = 2,
        conv_kernel_size: int = 31,
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
            norm_each_transformer=False,
            final_norm=False,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            time_transformer_depth=time_conformer_depth,
            freq_transformer_depth=freq_conformer_depth,
            linear_transformer_depth=linear_conformer_depth,
            sequence_model=conformer_stack(ff_mult, conv_expansion_factor, conv_kernel_size),
            # COMPAT: mel_band_conformer.py took the BS file's mask MLP: mask_estimator_depth - 1 hidden layers
            mask_estimator_hidden_layers=mask_estimator_depth - 1,
            match_input_audio_length=match_input_audio_length,
            sample_rate=sample_rate,
            freq_range=freq_range,
            stereo=stereo,
            stft_n_fft=stft_n_fft,
            **shared,
        )
        # COMPAT: mel_band_conformer.py's multi-resolution loss hops by at least a quarter window
        self.multi_stft_loss.hop_at_least_quarter_window = True
