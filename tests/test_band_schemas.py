"""Band schemas: every non-overlapping schema covers each STFT bin exactly once, in order, at any size."""

import pytest
import torch

from bs_roformer import SCHEMAS, BSRoformer, band_schema, freqs_per_bands
from bs_roformer.models import DEFAULT_FREQS_PER_BANDS

NON_OVERLAPPING = [name for name in SCHEMAS if name != "mel"]


@pytest.mark.parametrize("name", NON_OVERLAPPING)
@pytest.mark.parametrize("n_fft", [512, 1024, 2048, 4096])
@pytest.mark.parametrize("sample_rate", [16000, 44100, 48000])
def test_schema_covers_every_bin_once_in_order(name, n_fft, sample_rate):
    bands = band_schema(name, n_fft, sample_rate)
    assert [b for band in bands for b in band] == list(range(n_fft // 2 + 1))
    assert all(len(band) >= 1 for band in bands) and len(bands) >= 2


@pytest.mark.parametrize("n_fft", [512, 2048])
@pytest.mark.parametrize("sample_rate", [16000, 44100])
def test_mel_schema_overlaps_but_covers_every_bin(n_fft, sample_rate):
    bands = band_schema("mel", n_fft, sample_rate, num_bands=32)
    covered = torch.zeros(n_fft // 2 + 1, dtype=torch.int)
    for band in bands:
        covered[band.start : band.stop] += 1
    assert (covered >= 1).all() and (covered >= 2).any()
    assert [band.start for band in bands] == sorted(band.start for band in bands)


def test_papers_v7_split_in_hertz():
    bins = freqs_per_bands("v7", 2048, 44100)
    bin_hz = 44100 / 2048
    edges_hz = [sum(bins[:k]) * bin_hz for k in range(len(bins) + 1)]
    # 10 bands of 100 Hz to 1 kHz, 12 of 250 Hz to 4 kHz, 8 of 500 Hz, 8 of 1 kHz, 2 of 2 kHz, then the rest
    assert len(bins) == 10 + 12 + 8 + 8 + 2 + 1
    for k, expected in [(10, 1000), (22, 4000), (30, 8000), (38, 16000), (40, 20000)]:
        assert abs(edges_hz[k] - expected) <= bin_hz / 2
    assert freqs_per_bands("vocals") == freqs_per_bands("other") == bins
    assert len(freqs_per_bands("bass")) == 10 + 5 + 6 + 4 + 4 + 1
    assert len(freqs_per_bands("drums")) == 20 + 10 + 8 + 8 + 8 + 1


def test_bs_roformer_schema_is_the_default_layout_and_scales():
    assert freqs_per_bands("bs_roformer", 2048) == tuple(DEFAULT_FREQS_PER_BANDS)
    assert sum(freqs_per_bands("bs_roformer", 4096)) == 2049


@pytest.mark.parametrize("divisions", [12, 24])
def test_musical_bands_are_equal_tempered_where_wider_than_a_bin(divisions):
    n_fft, sample_rate = 4096, 44100
    bands = band_schema("musical", n_fft, sample_rate, divisions=divisions)
    semitone_ratio = 2 ** (1 / divisions)
    for band in bands[:-1]:
        if band.start * sample_rate / n_fft > 2000:
            assert band.stop / band.start == pytest.approx(semitone_ratio, abs=1.5 / band.start)
    assert len(band_schema("musical", n_fft, sample_rate, divisions=24)) > len(band_schema("musical", n_fft, sample_rate, divisions=12))


def test_schema_bins_follow_freq_range():
    bands = band_schema("v7", 2048, 44100, bins=(1, 800))
    assert bands[0].start == 1 and bands[-1].stop == 800
    model = BSRoformer(dim=16, depth=1, heads=1, dim_head=8, freqs_per_bands="v7", freq_range=(1, 800))
    assert model.bands.num_bins == 799


def test_bs_roformer_takes_a_schema_name():
    model = BSRoformer(dim=16, depth=1, heads=1, dim_head=8, freqs_per_bands="musical")
    assert model.bands.bins_per_band == freqs_per_bands("musical")
    assert model(torch.randn(1, 4096)).shape == (1, 1, 4096)


def test_unknown_schema_and_bad_divisions():
    with pytest.raises(ValueError, match="unknown band schema 'bark'; choose one of v7, bass, drums"):
        band_schema("bark")
    with pytest.raises(ValueError, match="divisions must be a positive number"):
        band_schema("musical", divisions=0)
