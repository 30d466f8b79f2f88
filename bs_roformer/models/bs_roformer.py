"""BS-RoFormer (Lu et al. 2023, "Music Source Separation with Band-Split RoPE Transformer").

What differs from the shared body: contiguous, non-overlapping bands given by `freqs_per_bands`, one final
norm after the axial transformer, and the mask MLP depth convention of this model file.
"""

from functools import partial
from typing import Optional, Sequence, Tuple, Union

from ..modules.band_schemas import BS_ROFORMER_BINS, contiguous_bands
from .band_split_model import band_layout_for
from .band_split_roformer import BandSplitRoformer

DEFAULT_FREQS_PER_BANDS = BS_ROFORMER_BINS


class BSRoformer(BandSplitRoformer):
    """Band-Split RoPE Transformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Defaults follow Music-Source-Separation-Training (MSST), the code that trained the published
    checkpoints, so `BSRoformer(**config["model"])` with one of its YAML configs builds the model its
    checkpoint was trained with. Upstream bs-roformer 0.5.1 is the same model with
    `value_residual=True, zero_dc=False, match_input_audio_length=False`.

    Keywords of this model (the rest: `BandSplitRoformer`, `BandSplitModel`):
        freqs_per_bands: STFT bins per band, in order, adding up to the modelled bins; or the name of a
            band schema (`bs_roformer.band_schema`), e.g. "v7" or "musical", resolved for stft_n_fft.
        freq_range: (first, end) STFT bins to model (-1 = open end); other bins come out silent.
        num_layers: another name of depth (the original BS-RoFormer SW export's config).
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: Optional[int] = None,
        num_layers: Optional[int] = None,
        freqs_per_bands: Union[str, Sequence[int]] = DEFAULT_FREQS_PER_BANDS,
        freq_range: Optional[Tuple[int, int]] = None,
        stereo: bool = False,
        stft_n_fft: int = 2048,
        sample_rate: int = 44100,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        mask_estimator_depth: int = 2,
        # COMPAT: MSST's BSRoformer always restores the input length in its iSTFT; upstream 0.5.1 does not.
        match_input_audio_length: bool = True,
        **shared,
    ):
        depth = depth_of(depth, num_layers)
        channels = 2 if stereo else 1
        make_bands = partial(contiguous_bands, freqs_per_bands, stft_n_fft, sample_rate)
        bands = band_layout_for(make_bands, channels, stft_n_fft, freq_range)
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
            sample_rate=sample_rate,
            **shared,
        )


def depth_of(depth: Optional[int], num_layers: Optional[int]) -> int:
    """depth, given as `depth` or as its alias `num_layers` (COMPAT: the BS-RoFormer SW export's name)."""
    if depth is None and num_layers is None:
        raise TypeError("missing the keyword depth (the number of axial layers; num_layers is accepted as its alias)")
    if depth is not None and num_layers is not None and depth != num_layers:
        raise ValueError(f"depth={depth} and num_layers={num_layers} disagree: num_layers is another name of depth; give one")
    return depth if depth is not None else num_layers
