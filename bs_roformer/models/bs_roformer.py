"""BS-RoFormer (Lu et al. 2023, "Music Source Separation with Band-Split RoPE Transformer").

What differs from the shared body: contiguous, non-overlapping bands given by `freqs_per_bands`, one final
norm after the axial transformer, and the mask MLP depth convention of this model file.
"""

from functools import partial
from typing import Optional, Sequence, Tuple

from ..modules.bands import BandLayout
from .band_split_model import band_layout_for
from .band_split_roformer import BandSplitRoformer

# 62 bands for a 2048-point STFT (1025 bins): 2 bins below 1 kHz, widening towards Nyquist
DEFAULT_FREQS_PER_BANDS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)


def contiguous_bands(freqs_per_bands: Tuple[int, ...], channels: int, first_bin: int, end_bin: int) -> BandLayout:
    if len(freqs_per_bands) < 2 or any(not isinstance(f, int) or f < 1 for f in freqs_per_bands):
        raise ValueError(f"freqs_per_bands must be two or more positive bin counts, got {freqs_per_bands}")
    if sum(freqs_per_bands) != end_bin - first_bin:
        raise ValueError(
            f"freqs_per_bands must add up to the {end_bin - first_bin} STFT bins the model sees "
            f"(bins {first_bin}..{end_bin - 1} from stft_n_fft and freq_range), but they add up to "
            f"{sum(freqs_per_bands)}"
        )
    return BandLayout.contiguous(freqs_per_bands, channels)


class BSRoformer(BandSplitRoformer):
    """Band-Split RoPE Transformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Defaults follow Music-Source-Separation-Training (MSST), the code that trained the published
    checkpoints, so `BSRoformer(**config["model"])` with one of its YAML configs builds the model its
    checkpoint was trained with. Upstream bs-roformer 0.5.1 is the same model with
    `value_residual=True, zero_dc=False, match_input_audio_length=False`.

    Keywords of this model (the rest: `BandSplitRoformer`, `BandSplitModel`):
        freqs_per_bands: STFT bins per band, in order; must add up to the modelled bins.
        freq_range: (first, end) STFT bins to model (-1 = open end); other bins come out silent.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        freqs_per_bands: Sequence[int] = DEFAULT_FREQS_PER_BANDS,
        freq_range: Optional[Tuple[int, int]] = None,
        stereo: bool = False,
        stft_n_fft: int = 2048,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        mask_estimator_depth: int = 2,
        # COMPAT: MSST's BSRoformer always restores the input length in its iSTFT; upstream 0.5.1 does not.
        match_input_audio_length: bool = True,
        **shared,
    ):
        channels = 2 if stereo else 1
        bands = band_layout_for(partial(contiguous_bands, tuple(freqs_per_bands)), channels, stft_n_fft, freq_range)
        super().__init__(
            dim,
            depth=depth,
            bands=bands,
            norm_each_transformer=False,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            # COMPAT: every lineage's BS model file builds mask_estimator_depth - 1 hidden layers
            # (the Mel file builds mask_estimator_depth; lucidrains/BS-RoFormer issue #48).
            mask_estimator_hidden_layers=mask_estimator_depth - 1,
            match_input_audio_length=match_input_audio_length,
            freq_range=freq_range,
            stereo=stereo,
            stft_n_fft=stft_n_fft,
            **shared,
        )
