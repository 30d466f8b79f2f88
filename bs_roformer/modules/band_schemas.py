"""Named band schemas: how a model groups the STFT bins into bands, for any n_fft and sample rate.

    v7 (= vocals, other)  BSRNN paper (Luo & Yu 2022): 100 Hz bands below 1 kHz, 250 Hz to 4 kHz, 500 Hz to
                          8 kHz, 1 kHz to 16 kHz, 2 kHz to 20 kHz, the rest one band
    bass, drums           the paper's per-instrument variants (50 Hz resolution at the bottom)
    bs_roformer           BS-RoFormer's 62 bands for n_fft 2048, scaled to other sizes
    musical               bands centred on the notes of an equal temperament with `divisions` per octave
                          (24 = quarter tones), as the Refined BSRNN report proposes
    mel                   Mel-Band RoFormer's overlapping bands from a librosa mel filter bank

A schema is a list of `range`s of bins, one per band. Every schema except `mel` covers each bin exactly
once, in order; where a band would be narrower than one bin at a small n_fft it merges into its neighbour.
"""

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .bands import BandLayout, mel_band_membership

# (upper edge in Hz, band width in Hz) segments from 0 Hz; above the last edge, one band up to Nyquist
HZ_SEGMENTS: Dict[str, Tuple[Tuple[float, float], ...]] = {
    "v7": ((1000, 100), (4000, 250), (8000, 500), (16000, 1000), (20000, 2000)),
    "bass": ((500, 50), (1000, 100), (4000, 500), (8000, 1000), (16000, 2000)),
    "drums": ((1000, 50), (2000, 100), (4000, 250), (8000, 500), (16000, 1000)),
}
HZ_SEGMENTS["vocals"] = HZ_SEGMENTS["other"] = HZ_SEGMENTS["v7"]

# 62 bands for a 2048-point STFT (1025 bins): 2 bins below 1 kHz, widening towards Nyquist
BS_ROFORMER_BINS = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)

SCHEMAS = (*HZ_SEGMENTS, "bs_roformer", "musical", "mel")


def band_schema(
    name: str,
    n_fft: int = 2048,
    sample_rate: int = 44100,
    *,
    bins: Optional[Tuple[int, int]] = None,
    divisions: int = 24,
    num_bands: int = 60,
) -> List[range]:
    """The bins of each band of schema `name` over bins [first, end) (default: all n_fft // 2 + 1).

    divisions: notes per octave of the `musical` schema; num_bands: bands of the `mel` schema.
    """
    first, end = bins if bins is not None else (0, n_fft // 2 + 1)
    if name in HZ_SEGMENTS:
        return _ranges_from_edges(_segment_edges_hz(HZ_SEGMENTS[name]) * n_fft / sample_rate, first, end)
    if name == "bs_roformer":
        edges_2048 = np.cumsum((0, *BS_ROFORMER_BINS))
        return _ranges_from_edges(edges_2048 * (n_fft / 2048), first, end)
    if name == "musical":
        return _ranges_from_edges(_note_boundaries_hz(divisions, sample_rate / 2) * n_fft / sample_rate, first, end)
    if name == "mel":
        membership = mel_band_membership(sample_rate, n_fft, num_bands, bins)
        return [range(first + int(row.nonzero().min()), first + int(row.nonzero().max()) + 1) for row in membership]
    raise ValueError(f"unknown band schema {name!r}; choose one of {', '.join(SCHEMAS)}")


def freqs_per_bands(name: str, n_fft: int = 2048, sample_rate: int = 44100, **options) -> Tuple[int, ...]:
    """Bins per band of a non-overlapping schema, the form `BSRoformer(freqs_per_bands=...)` takes."""
    if name == "mel":
        raise ValueError("the mel schema's bands overlap, so bin counts cannot describe it; use MelBandRoformer")
    return tuple(len(band) for band in band_schema(name, n_fft, sample_rate, **options))


def contiguous_bands(
    schema: Union[str, Sequence[int]], n_fft: int, sample_rate: int, channels: int, first_bin: int, end_bin: int
) -> BandLayout:
    """Non-overlapping bands over the modelled bins [first_bin, end_bin), from a schema name or bins per band."""
    widths = freqs_per_bands(schema, n_fft, sample_rate, bins=(first_bin, end_bin)) if isinstance(schema, str) else tuple(schema)
    if len(widths) < 2 or any(not isinstance(width, int) or width < 1 for width in widths):
        raise ValueError(f"freqs_per_bands must be two or more positive bin counts, got {widths}")
    if sum(widths) != end_bin - first_bin:
        raise ValueError(
            f"freqs_per_bands must add up to the {end_bin - first_bin} STFT bins the model sees "
            f"(bins {first_bin}..{end_bin - 1} from stft_n_fft and freq_range), but they add up to {sum(widths)}"
        )
    return BandLayout.contiguous(widths, channels)


def _segment_edges_hz(segments: Sequence[Tuple[float, float]]) -> np.ndarray:
    """Band edges in Hz: each segment's width from the previous segment's upper edge up to its own."""
    edges, lower = [], 0.0
    for upper, width in segments:
        edges.extend(np.arange(lower, upper, width))
        lower = upper
    return np.asarray([*edges, lower], dtype=np.float64)


def _note_boundaries_hz(divisions: int, nyquist: float) -> np.ndarray:
    """Geometric midpoints between consecutive notes (A4 = 440 Hz) from the lowest audible note up to Nyquist."""
    if not isinstance(divisions, int) or divisions < 1:
        raise ValueError(f"divisions must be a positive number of notes per octave, got {divisions!r}")
    lowest_audible_hz = 20.0
    steps = np.arange(math.floor(divisions * math.log2(lowest_audible_hz / 440)), math.ceil(divisions * math.log2(nyquist / 440)) + 1)
    boundaries = 440 * 2 ** ((steps + 0.5) / divisions)
    return np.concatenate(([0.0], boundaries[boundaries < nyquist]))


def _ranges_from_edges(edges: Sequence[float], first: int, end: int) -> List[range]:
    """Bands between band edges given in (fractional) bins, clipped to [first, end); the last band takes the rest."""
    bin_edges = np.clip(np.round(np.asarray(edges, dtype=np.float64)).astype(int), first, end)
    bin_edges = sorted({first, *bin_edges.tolist(), end})
    return [range(lo, hi) for lo, hi in zip(bin_edges[:-1], bin_edges[1:])]
