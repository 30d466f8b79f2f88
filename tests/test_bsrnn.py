"""BSRNN: every layer type and loss trains, the paper's configuration has the parameters it should, transfer
learning trains only the heads, and a tiny model overfits one mixture."""

import math

import pytest
import torch

from bs_roformer import BSRNN, BSRoformer, freqs_per_bands
from bs_roformer.inference.config import model_from_config

from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio

TINY_RNN = dict(dim=16, depth=1, hidden=16, stft_n_fft=256, stft_hop_length=64, sample_rate=16000)


@pytest.mark.parametrize("layer_type", ["lstm", "gru", "conv"])
@pytest.mark.parametrize("loss", ["t", "tf", "t+tf", "mrstft"])
def test_every_layer_type_and_loss_trains(layer_type, loss):
    model = BSRNN(**TINY_RNN, layer_type=layer_type, loss=loss, multi_stft_resolutions_window_sizes=(256, 128))
    audio = make_audio(2, 1, 2048)
    loss_value, terms = model(audio, target=audio * 0.5, return_loss_breakdown=True)
    assert len(terms) == len(loss.split("+")) and torch.isfinite(loss_value)
    loss_value.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("stereo", [False, True])
@pytest.mark.parametrize("num_stems", [1, 4])
def test_output_shapes_with_full_band_attention(stereo, num_stems):
    channels = 2 if stereo else 1
    model = BSRNN(**TINY_RNN, stereo=stereo, num_stems=num_stems, attention_heads=2, attention_dim=4)
    audio = make_audio(2, channels, 3000)
    stems = model(audio)
    assert stems.shape == ((2, channels, 3000) if num_stems == 1 else (2, num_stems, channels, 3000))
    target = torch.zeros_like(stems)
    model(audio, target=target).backward()
    assert model.layers[0].attention.to_qk.weight.grad.abs().sum() > 0


def test_multi_task_loss_is_the_sum_of_per_stem_losses():
    torch.manual_seed(0)
    model = BSRNN(**TINY_RNN, num_stems=3).eval()
    audio = make_audio(1, 1, 2048)
    target = make_audio(1, 3, 2048, seed=1)[:, :, None]
    stems = model(audio)
    per_stem = []
    for k in range(3):
        single = BSRNN(**TINY_RNN, num_stems=1).eval()
        single.load_state_dict({**model.state_dict(), **{
            key.replace(f"mask_estimators.{k}.", "mask_estimators.0."): value
            for key, value in model.state_dict().items() if key.startswith(f"mask_estimators.{k}.")
        }}, strict=False)
        torch.testing.assert_close(single(audio), stems[:, k])
        per_stem.append(single(audio, target=target[:, k]))
    torch.testing.assert_close(model(audio, target=target), sum(per_stem))


def lstm_parameters(dim_in: int, hidden: int) -> int:
    """One direction: input and recurrent weights of four gates, and their two bias vectors."""
    return 4 * hidden * dim_in + 4 * hidden * hidden + 2 * 4 * hidden


def paper_parameter_count(bins_per_band, channels=1, dim=128, depth=12, hidden=256) -> int:
    """Band split + `depth` blocks of two (norm, BLSTM, projection) + per-band (norm, one-hidden-layer GLU MLP)."""
    band_values = [2 * channels * bins for bins in bins_per_band]
    band_split = sum(values + values * dim + dim for values in band_values)
    sequence_layer = dim + 2 * lstm_parameters(dim, hidden) + 2 * hidden * dim + dim
    mask_hidden = 4 * dim
    masks = sum(dim + dim * mask_hidden + mask_hidden + mask_hidden * 2 * values + 2 * values for values in band_values)
    return band_split + depth * 2 * sequence_layer + masks


def test_parameter_count_of_the_papers_configuration():
    model = BSRNN(dim=128, depth=12, hidden=256, freqs_per_bands="v7")
    bins = freqs_per_bands("v7", 2048, 44100)
    assert len(bins) == 41  # the paper's v7 split
    count = sum(p.numel() for p in model.parameters())
    print(f"BSRNN paper configuration (v7, dim 128, 12 BLSTM blocks, hidden 256, mono): {count:,} parameters")
    assert count == paper_parameter_count(bins) == 25_637_894


@pytest.mark.parametrize("make_model", [
    lambda: BSRNN(**TINY_RNN, num_stems=1),
    lambda: BSRoformer(**TINY, **SMALL_STFT, freqs_per_bands=SMALL_BANDS),
], ids=["bsrnn", "bs_roformer"])
def test_transfer_learning_trains_only_new_heads(make_model):
    model = make_model()
    backbone_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("mask_estimators")}
    model.freeze_backbone()
    model.replace_mask_heads(2)
    audio = make_audio(1, 1, 2048)
    stems = model(audio)
    assert stems.shape == (1, 2, 1, 2048)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model(audio, target=torch.zeros_like(stems)).backward()
    optimizer.step()
    for name, parameter in model.named_parameters():
        if name.startswith("mask_estimators"):
            assert parameter.grad is not None, name
        else:
            assert parameter.grad is None, name
    after = model.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in backbone_before.items())


def test_tiny_bsrnn_overfits_one_mixture():
    torch.manual_seed(0)
    sample_rate, length = 16000, 4096
    t = torch.arange(length) / sample_rate
    voice = 0.5 * torch.sin(2 * math.pi * 440 * t) * (1 + 0.3 * torch.sin(2 * math.pi * 3 * t))
    bass = 0.5 * torch.sign(torch.sin(2 * math.pi * 110 * t))
    mixture, target = (voice + bass)[None, None], voice[None, None]
    model = BSRNN(**TINY_RNN)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        loss = model(mixture, target=target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses[-10:]) < losses[0] / 10, f"loss went from {losses[0]:.3g} to {losses[-1]:.3g}"


@pytest.mark.parametrize("kwargs, message", [
    (dict(layer_type="transformer"), "layer_type must be one of lstm, gru, conv"),
    (dict(loss="t+snr"), "loss must join terms from t, tf, mrstft, sdr"),
    (dict(layer_type="conv", conv_kernel_size=4), "conv_kernel_size must be odd"),
    (dict(attention_heads=3), "attention_heads (3) must divide dim (16)"),
    (dict(freqs_per_bands="bark"), "unknown band schema 'bark'"),
    (dict(freqs_per_bands="mel"), "the mel schema's bands overlap"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        BSRNN(**{**TINY_RNN, **kwargs})


def test_bad_audio_gets_the_shared_errors():
    model = BSRNN(**TINY_RNN, stereo=True)
    with pytest.raises(ValueError, match="expects 2 channel"):
        model(make_audio(1, 1, 2048))
    with pytest.raises(ValueError, match="shorter than the STFT window"):
        model(make_audio(1, 2, 100))


def test_bsrnn_from_an_msst_config():
    config = {"audio": {"sample_rate": 16000}, "training": {"model_type": "bsrnn", "instruments": ["vocals", "other"],
              "target_instrument": "vocals"}, "model": dict(TINY_RNN, freqs_per_bands="drums")}
    model = model_from_config(config)
    assert isinstance(model, BSRNN) and len(model.bands.bins_per_band) == len(freqs_per_bands("drums", 256, 16000))


def test_bsrnn_separates_through_the_chunked_separator():
    from bs_roformer.inference import LoadedModel, Separator

    config = {"audio": {"sample_rate": 16000, "chunk_size": 4000}, "training": {"model_type": "bsrnn", "instruments": ["vocals", "other"]},
              "model": dict(TINY_RNN, stereo=True, num_stems=2), "inference": {"batch_size": 2, "num_overlap": 2}}
    model = model_from_config(config).eval()
    separator = Separator(LoadedModel(model=model, model_type="bsrnn", config=config, stems=["vocals", "other"], source="test"), device="cpu")
    stems = separator.separate_tensor(make_audio(1, 2, 10000)[0], sample_rate=16000)
    assert set(stems) == {"vocals", "other"} and stems["vocals"].shape == (2, 10000)
