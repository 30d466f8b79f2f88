"""Separator on tensors: exactness, batch independence, lossless sums, TTA, channels, rates, silence."""

import pytest
import torch
from torch import nn

from bs_roformer import LoadedModel, Separator, read_config
from bs_roformer.inference.config import model_from_config, stem_names
from helpers import make_audio, perturb_, tiny_config


class Identity(nn.Module):
    """Returns the mix as its one stem: whatever the separator adds or loses shows up exactly."""

    audio_channels, num_stems, stft_hop_length, stft_n_fft, sample_rate = 2, 1, 1, 1, 44100

    def forward(self, audio):
        return audio.clone()


def identity_separator(**options):
    config = read_config({"model": {}, "audio": {"chunk_size": 1000, "sample_rate": 44100}, "training": {"instruments": ["mix", "nothing"], "target_instrument": "mix"}})
    loaded = LoadedModel(Identity(), "identity", config, ["mix"], "test")
    return Separator(loaded, device="cpu", **options)


def tiny_separator(model_type="bs_roformer", num_stems=4, **options):
    config = read_config(tiny_config(model_type, num_stems=num_stems))
    torch.manual_seed(0)
    model = perturb_(model_from_config(config)).eval()
    loaded = LoadedModel(model, model_type, config, stem_names(config, num_stems), "test")
    return Separator(loaded, device="cpu", **options)


@pytest.mark.parametrize("length", [1, 100, 999, 1000, 1001, 4567])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_identity_model_gives_the_mix_back(length, batch_size):
    separator = identity_separator(batch_size=batch_size)
    mix = make_audio(1, 2, length, seed=length)[0]
    out = separator.separate_tensor(mix)
    assert list(out) == ["mix"] and (out["mix"] - mix).abs().max() <= 1e-6


def test_identity_with_tta_normalization_and_mono():
    mix = make_audio(1, 2, 3000)[0] * 3 + 0.5
    out = identity_separator(tta=True, normalize=True).separate_tensor(mix)["mix"]
    assert (out - mix).abs().max() <= 1e-5
    mono = identity_separator().separate_tensor(mix[0])["mix"]  # (t,) in, (t,) out: dual mono inside
    assert mono.shape == mix[0].shape and (mono - mix[0]).abs().max() <= 1e-6


def test_real_model_shapes_and_batch_independence():
    mix = make_audio(1, 2, 11_000, seed=1)[0]
    one = tiny_separator(batch_size=1).separate_tensor(mix)
    three = tiny_separator(batch_size=3).separate_tensor(mix)
    assert list(one) == ["drums", "bass", "other", "vocals"]
    for stem in one:
        assert one[stem].shape == mix.shape
        assert torch.allclose(one[stem], three[stem], rtol=1e-5, atol=1e-6)


def test_short_audio_is_padded():
    """Shorter than a chunk and than the model's STFT window (256 samples)."""
    separator = tiny_separator()
    for length in (1, 100, 255):
        out = separator.separate_tensor(make_audio(1, 2, length)[0])
        assert all(stem.shape == (2, length) and torch.isfinite(stem).all() for stem in out.values())


@pytest.mark.parametrize("rate", [44100, 22050])
def test_lossless_four_stems_add_up_to_the_mix(rate):
    mix = make_audio(1, 2, 9000, seed=2)[0]
    separator = tiny_separator()
    plain = separator.separate_tensor(mix, rate)
    lossless = separator.separate_tensor(mix, rate, lossless=True)
    assert (sum(plain.values()) - mix).abs().max() > 1e-3  # the plain separation is not lossless
    assert (sum(lossless.values()) - mix).abs().max() <= 1e-6
    # every stem gets what the model assigns to it in the residual; only drums and other share the rest
    residual = separator.separate_tensor(mix - sum(plain.values()), rate)
    for stem in ("bass", "vocals"):
        assert torch.allclose(lossless[stem], plain[stem] + residual[stem], atol=1e-6)
    for stem in ("drums", "other"):
        assert (lossless[stem] - plain[stem] - residual[stem]).abs().max() > 1e-4


def test_lossless_single_stem_gets_its_complement():
    separator = tiny_separator(num_stems=1)
    mix = make_audio(1, 2, 6000, seed=3)[0]
    out = separator.separate_tensor(mix, lossless=True)
    assert list(out) == ["vocals", "other"]
    assert (out["vocals"] + out["other"] - mix).abs().max() <= 1e-6
    # the complement is the instrumental: asked for both, it comes once, as instrumental (not two equal files)
    both = separator.separate_tensor(mix, lossless=True, extract_instrumental=True)
    assert list(both) == ["vocals", "instrumental"]
    assert torch.equal(both["instrumental"], out["other"])


def test_extract_instrumental_is_mix_minus_vocals():
    separator = tiny_separator()
    mix = make_audio(1, 2, 6000, seed=4)[0]
    out = separator.separate_tensor(mix, extract_instrumental=True)
    assert (out["instrumental"] - (mix - out["vocals"])).abs().max() <= 1e-6


def test_silence_gives_silence():
    separator = tiny_separator(normalize=True)
    out = separator.separate_tensor(torch.zeros(2, 5000), lossless=True)
    assert all(torch.isfinite(stem).all() and stem.abs().max() == 0 for stem in out.values())


def test_resampled_input_keeps_its_length_and_rate():
    separator = tiny_separator(model_type="mel_band_roformer")
    mix = make_audio(1, 1, 7001, seed=5)[0]
    out = separator.separate_tensor(mix, 22050)
    assert all(stem.shape == (1, 7001) for stem in out.values())


def test_mono_model_on_stereo_audio():
    config = read_config(tiny_config(stereo=False, num_stems=2))
    model = model_from_config(config).eval()
    separator = Separator(LoadedModel(model, "bs_roformer", config, ["drums", "bass"], "test"), device="cpu")
    mix = make_audio(1, 2, 5000, seed=6)[0]
    out = separator.separate_tensor(mix)
    left = separator.separate_tensor(mix[:1])
    assert out["drums"].shape == (2, 5000)
    assert torch.allclose(out["drums"][:1], left["drums"], atol=1e-6)


def test_reduced_precision_runs():
    mix = make_audio(1, 2, 5000, seed=7)[0]
    full = tiny_separator().separate_tensor(mix)["vocals"]
    half = tiny_separator(precision="bf16").separate_tensor(mix)["vocals"]
    assert torch.isfinite(half).all()
    assert (half - full).pow(2).sum() < 0.05 * full.pow(2).sum()


def test_bad_arguments():
    separator = identity_separator()
    with pytest.raises(ValueError, match="3 channels"):
        separator.separate_tensor(torch.zeros(3, 100))
    with pytest.raises(TypeError, match="floating-point"):
        separator.separate_tensor(torch.zeros(2, 100, dtype=torch.int16))
    with pytest.raises(ValueError, match="no samples"):
        separator.separate_tensor(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="precision"):
        identity_separator(precision="int8")
    with pytest.raises(ValueError, match="shorter than the model's STFT window"):
        tiny_separator(chunk_size=128)
