"""Shapes, defaults, published configurations and errors of BSRoformer and MelBandRoformer."""

import pytest
import torch

import references
from bs_roformer import BSRoformer, MelBandRoformer
from bs_roformer.models import DEFAULT_FREQS_PER_BANDS
from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio

BS_SMALL = dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
MEL_SMALL = dict(TINY, num_bands=16, **SMALL_STFT)

# model sections of published Music-Source-Separation-Training configs (trimmed of loss settings)
VIPERX_BS_1297 = dict(
    dim=512, depth=12, stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1,
    linear_transformer_depth=0, freqs_per_bands=DEFAULT_FREQS_PER_BANDS, dim_head=64, heads=8, attn_dropout=0.1,
    ff_dropout=0.1, flash_attn=True, dim_freqs_in=1025, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048,
    stft_normalized=False, mask_estimator_depth=2,
)
ZFTURBO_BS_4STEM = dict(
    dim=384, depth=8, stereo=True, num_stems=4, time_transformer_depth=1, freq_transformer_depth=1,
    freqs_per_bands=DEFAULT_FREQS_PER_BANDS, dim_head=64, heads=8, attn_dropout=0.1, ff_dropout=0.1,
    flash_attn=True, dim_freqs_in=1025, stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048,
    stft_normalized=False, mask_estimator_depth=2, mlp_expansion_factor=2,
)
KJ_MEL_VOCALS = dict(
    dim=384, depth=6, stereo=True, num_stems=1, time_transformer_depth=1, freq_transformer_depth=1, num_bands=60,
    dim_head=64, heads=8, attn_dropout=0, ff_dropout=0, flash_attn=True, dim_freqs_in=1025, sample_rate=44100,
    stft_n_fft=2048, stft_hop_length=441, stft_win_length=2048, stft_normalized=False, mask_estimator_depth=2,
)


@pytest.mark.parametrize(
    "model_cls, config, parameters",
    [
        # 159,758,092 x 4 bytes = 639.0 MB; the published 1296/1297 checkpoint files are 639.3 MB
        (BSRoformer, VIPERX_BS_1297, 159_758_092),
        (BSRoformer, ZFTURBO_BS_4STEM, 131_704_164),
        (MelBandRoformer, KJ_MEL_VOCALS, 228_202_852),
    ],
    ids=["viperx-bs-1297", "zfturbo-bs-4stem", "kj-mel-vocals"],
)
def test_published_configurations(model_cls, config, parameters):
    """A published MSST config builds, with our defaults, exactly the model its checkpoint was trained with."""
    model = model_cls(**config).eval()
    assert sum(p.numel() for p in model.parameters()) == parameters

    namespace = references.audio_separator()
    reference = (namespace.BSRoformer if model_cls is BSRoformer else namespace.MelBandRoformer)(**config)
    model.load_state_dict(reference.state_dict(), strict=True)

    audio = make_audio(1, 2, 441 * 24 + 100, seed=0)
    with torch.inference_mode():
        stems = model(audio)
    expected = (1, config["num_stems"], 2) if config["num_stems"] > 1 else (1, 2)
    assert stems.shape[:-1] == expected and torch.isfinite(stems).all()


@pytest.mark.parametrize("model_cls, kwargs", [(BSRoformer, BS_SMALL), (MelBandRoformer, MEL_SMALL)])
@pytest.mark.parametrize("stereo, num_stems", [(False, 1), (True, 1), (False, 4), (True, 4)])
def test_output_shapes(model_cls, kwargs, stereo, num_stems):
    model = model_cls(**kwargs, stereo=stereo, num_stems=num_stems, match_input_audio_length=True).eval()
    channels = 2 if stereo else 1
    audio = make_audio(2, channels, 64 * 20 + 9)
    with torch.no_grad():
        stems = model(audio)
    assert stems.shape == ((2, channels, audio.shape[-1]) if num_stems == 1 else (2, num_stems, channels, audio.shape[-1]))
    if not stereo:
        with torch.no_grad():
            assert torch.equal(model(audio[:, 0]), stems)  # (b, t) is (b, 1, t)


@pytest.mark.parametrize("model_cls, kwargs", [(BSRoformer, BS_SMALL), (MelBandRoformer, MEL_SMALL)])
def test_output_length(model_cls, kwargs):
    audio = make_audio(1, 1, 64 * 20 + 9)
    with torch.no_grad():
        trimmed = model_cls(**kwargs, match_input_audio_length=False).eval()(audio)
        restored = model_cls(**kwargs, match_input_audio_length=True).eval()(audio)
    assert trimmed.shape[-1] == 64 * 20  # hop * (t // hop), as the reference code returns
    assert restored.shape[-1] == audio.shape[-1]


def test_msst_defaults():
    bs, mel = BSRoformer(**BS_SMALL), MelBandRoformer(**MEL_SMALL)
    assert bs.stft.zero_dc and mel.stft.zero_dc
    assert bs.match_input_audio_length and not mel.match_input_audio_length
    assert not bs.layers.value_residual and not any("value_residual" in key for key in bs.state_dict())
    assert all(len(block) == 2 for block in mel.layers)  # no linear transformer unless asked
    # COMPAT mask MLP depth: BS builds depth - 1 hidden layers, Mel builds depth
    assert len(bs.mask_estimators[0].to_freqs[0][0]) == 3  # Linear, Tanh, Linear
    assert len(mel.mask_estimators[0].to_freqs[0][0]) == 3


def test_value_residual_switch():
    plain = BSRoformer(**BS_SMALL)
    mixed = BSRoformer(**BS_SMALL, value_residual=True)
    added = set(mixed.state_dict()) - set(plain.state_dict())
    assert added and all(".to_value_residual_mix." in key and not key.startswith("layers.0.") for key in added)


def test_training_step_lowers_the_loss():
    torch.manual_seed(0)
    model = BSRoformer(**BS_SMALL, stereo=True, num_stems=2)
    audio = make_audio(2, 2, 64 * 24, seed=1)
    target = torch.stack([audio * 0.7, audio * 0.3], dim=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(audio, target=target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --- freq_range ---------------------------------------------------------------------------------------


def test_freq_range_models_only_the_slice():
    model = BSRoformer(**dict(BS_SMALL, freqs_per_bands=(8, 8, 16, 32)), freq_range=(0, 64), zero_dc=False).eval()
    assert model.bands.num_bins == 64
    audio = make_audio(1, 1, 64 * 40, seed=2) + 0.5 * torch.sin(torch.arange(64 * 40) * 2 * torch.pi * 0.4)
    with torch.no_grad():
        stems = model(audio)
    spectrum = torch.stft(stems[0], 256, 64, window=torch.hann_window(256), return_complex=True).abs()
    # bins above the modelled range come out silent (the 0.4 * sample-rate tone is gone), apart from the
    # window's leakage next to the range edge and at the ends of the signal
    assert spectrum[:, 72:, 4:-4].max() < 1e-3 * spectrum[:, :64].max()


def test_freq_range_without_low_bins_zeroes_them():
    model = BSRoformer(**dict(BS_SMALL, freqs_per_bands=(16, 32, 49)), freq_range=(32, -1)).eval()
    audio = make_audio(1, 1, 64 * 40, seed=3) + 0.3  # DC and low tones
    with torch.no_grad():
        stems = model(audio)
    spectrum = torch.stft(stems[0], 256, 64, window=torch.hann_window(256), return_complex=True).abs()
    assert spectrum[:, :24, 4:-4].max() < 1e-3 * spectrum[:, 32:].max()


def test_mel_freq_range_spans_only_the_range():
    model = MelBandRoformer(**dict(MEL_SMALL, num_bands=8), freq_range=(10, 100))
    assert model.bands.num_bins == 90
    assert sum(model.bands.bins_per_band) >= 90
    with torch.no_grad():
        assert model.eval()(make_audio(1, 1, 64 * 20)).shape == (1, 1, 64 * 20)


def test_freq_range_validation():
    with pytest.raises(ValueError, match=r"freq_range=\(50, 20\)"):
        BSRoformer(**BS_SMALL, freq_range=(50, 20))
    with pytest.raises(ValueError, match="add up to the 64 STFT bins"):
        BSRoformer(**BS_SMALL, freq_range=(0, 64))


# --- bad input -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stereo_model():
    return BSRoformer(**BS_SMALL, stereo=True, num_stems=2).eval()


def test_wrong_channel_count(stereo_model):
    with pytest.raises(ValueError, match=r"stereo=True expects 2 channel\(s\).*got 1 channel"):
        stereo_model(torch.zeros(1, 1, 4096))
    with pytest.raises(ValueError, match=r"audio\[None\]"):
        stereo_model(torch.zeros(2, 4096))
    with pytest.raises(ValueError, match=r"stereo=False expects 1 channel"):
        BSRoformer(**BS_SMALL)(torch.zeros(1, 2, 4096))


def test_audio_shorter_than_the_stft_window(stereo_model):
    with pytest.raises(ValueError, match=r"200 samples long, shorter than the STFT window \(256 samples\)"):
        stereo_model(torch.zeros(1, 2, 200))


def test_wrong_rank(stereo_model):
    with pytest.raises(ValueError, match=r"shape \(batch, 2, time\), got \(4096,\)"):
        stereo_model(torch.zeros(4096))


def test_integer_audio(stereo_model):
    with pytest.raises(TypeError, match=r"floating-point tensor, got torch.int16.*32768"):
        stereo_model(torch.zeros(1, 2, 4096, dtype=torch.int16))


def test_target_shape_mismatch(stereo_model):
    audio = torch.zeros(1, 2, 4096)
    with pytest.raises(ValueError, match=r"\(batch, stems, channels, time\) = \(1, 2, 2, 4096\).*got \(1, 2, 4096\)"):
        stereo_model(audio, target=torch.zeros(1, 2, 4096))
    with pytest.raises(TypeError, match="target must be a floating-point tensor"):
        stereo_model(audio, target=torch.zeros(1, 2, 2, 4096, dtype=torch.long))


def test_freqs_per_bands_must_cover_the_bins():
    with pytest.raises(ValueError, match=r"add up to the 129 STFT bins.*add up to 128"):
        BSRoformer(**dict(BS_SMALL, freqs_per_bands=(64, 64)))
    with pytest.raises(ValueError, match="add up to the 1025 STFT bins"):
        BSRoformer(dim=16, depth=1, freqs_per_bands=(512, 512))


def test_unknown_keyword_names_it():
    with pytest.raises(TypeError, match="num_stem"):
        BSRoformer(**BS_SMALL, num_stem=2)
    with pytest.raises(TypeError, match="freqs_per_bands"):
        MelBandRoformer(**MEL_SMALL, freqs_per_bands=(1, 2))


def test_invalid_sizes():
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        BSRoformer(dim=16, depth=0)
