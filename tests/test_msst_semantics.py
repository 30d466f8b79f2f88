"""Semantics of the Music-Source-Separation-Training settings that audio-separator's copy ignores
(zero_dc, skip_connection, restoring the input length), and activation checkpointing.

The MSST code zeroes the DC bin of the masked spectrum right before `torch.istft` and passes
`length=<input length>` to it; patching `torch.istft` while the audio-separator reference runs turns that
reference into exactly the MSST computation.
"""

from unittest import mock

import pytest
import torch
from einops import pack, rearrange, unpack

import references
from bs_roformer import BSRoformer, MelBandRoformer
from helpers import SMALL_BANDS, SMALL_STFT, TINY, assert_relative_close, make_audio, perturb_

REAL_ISTFT = torch.istft


def msst_istft(zero_dc: bool, length: int = None):
    """torch.istft as MSST calls it: DC bin zeroed, input length restored."""

    def istft(spec, *args, **kwargs):
        if zero_dc:
            spec = spec.clone()
            spec[:, 0] = 0
        if length is not None:
            kwargs["length"] = length
        return REAL_ISTFT(spec, *args, **kwargs)

    return istft


def pair(model: str, **kwargs):
    torch.manual_seed(0)
    namespace = references.audio_separator()
    reference_cls, our_cls = (
        (namespace.BSRoformer, BSRoformer) if model == "bs" else (namespace.MelBandRoformer, MelBandRoformer)
    )
    kwargs = dict(TINY, attn_dropout=0.0, ff_dropout=0.0, stereo=True, **kwargs)
    reference = perturb_(reference_cls(**kwargs)).eval()
    ours = our_cls(**kwargs).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


@pytest.mark.parametrize("zero_dc", [True, False])
def test_bs_defaults_follow_msst_dc_and_length(zero_dc):
    """BSRoformer defaults (zero_dc=True, input length restored) compute what MSST's BSRoformer computes."""
    reference, ours = pair("bs", freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
    if not zero_dc:
        ours.stft.zero_dc = False
    audio = make_audio(2, 2, 64 * 40 + 13, seed=3)
    with torch.no_grad(), mock.patch.object(torch, "istft", msst_istft(zero_dc, length=audio.shape[-1])):
        expected = reference(audio)
    with torch.no_grad():
        output = ours(audio)
    assert output.shape[-1] == audio.shape[-1]
    assert_relative_close(f"msst-bs zero_dc={zero_dc}: output", output, expected)


def test_mel_zero_dc_and_input_length():
    reference, ours = pair("mel", num_bands=16, match_input_audio_length=True, **SMALL_STFT)
    audio = make_audio(1, 2, 64 * 30 + 50, seed=4)
    with torch.no_grad(), mock.patch.object(torch, "istft", msst_istft(zero_dc=True)):
        expected = reference(audio)
    with torch.no_grad():
        output = ours(audio)
    assert output.shape[-1] == audio.shape[-1]
    assert_relative_close("msst-mel zero_dc: output", output, expected)


def test_zero_dc_removes_exactly_the_dc_bin():
    """By linearity of the iSTFT: output(zero_dc=False) - output(zero_dc=True) = iSTFT(DC bin of the masked spectrum)."""
    torch.manual_seed(0)
    model = BSRoformer(**TINY, stereo=True, freqs_per_bands=SMALL_BANDS, **SMALL_STFT, zero_dc=False).eval()
    audio = make_audio(1, 2, 64 * 40, seed=5) + 0.3
    inverse = model.stft.inverse
    with torch.no_grad(), mock.patch.object(model.stft, "inverse", wraps=inverse) as spy:
        with_dc = model(audio)
        masked_spectrum = spy.call_args.args[0]
        model.stft.zero_dc = True
        without_dc = model(audio)
        dc_only = torch.zeros_like(masked_spectrum)
        dc_only[:, :, :2] = masked_spectrum[:, :, :2]  # bin 0 of both channels, interleaved (f s)
        model.stft.zero_dc = False
        dc_contribution = inverse(dc_only, length=audio.shape[-1])[:, 0]
    assert (with_dc - without_dc).abs().max() > 1e-4
    assert_relative_close("zero_dc removes the DC bin", with_dc - without_dc, dc_contribution, 1e-4)


@pytest.mark.parametrize("model_cls", [BSRoformer, MelBandRoformer])
def test_skip_connection_adds_all_previous_layer_outputs(model_cls):
    """Before each layer's time transformer, the outputs of all previous layers are added (MSST)."""
    torch.manual_seed(0)
    extra = dict(freqs_per_bands=SMALL_BANDS) if model_cls is BSRoformer else dict(num_bands=16)
    kwargs = dict(TINY, depth=3, linear_transformer_depth=1, **SMALL_STFT, **extra)
    model = perturb_(model_cls(**kwargs, skip_connection=True)).eval()
    plain = model_cls(**kwargs, skip_connection=False).eval()
    plain.load_state_dict(model.state_dict())

    features = torch.randn(2, 11, len(model.bands.bins_per_band), 32)

    def axial(x, skip):
        outputs = []
        for block in model.layers:
            x, shape = pack([x], "b * d")
            x = unpack(block.linear(x)[0], shape, "b * d")[0]
            if skip:
                x = x + sum(outputs) if outputs else x
            x = rearrange(x, "b t f d -> b f t d")
            x, shape = pack([x], "* t d")
            x = rearrange(unpack(block.time(x)[0], shape, "* t d")[0], "b f t d -> b t f d")
            x, shape = pack([x], "* f d")
            x = unpack(block.freq(x)[0], shape, "* f d")[0]
            outputs.append(x)
        return x

    with torch.no_grad():
        expected = axial(features, skip=True)
        assert_relative_close(f"{model_cls.__name__} skip_connection", model.layers(features), expected, 1e-5)
        assert (plain.layers(features) - expected).abs().max() > 1e-3
        assert_relative_close(f"{model_cls.__name__} no skip_connection", plain.layers(features), axial(features, skip=False), 1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_recomputation_gives_the_same_loss_and_gradients(dropout):
    """Training recomputes (per group of sequences) the feed-forward blocks by default, and whole
    transformers with use_torch_checkpoint; results must be those of keeping every activation, also with
    dropout (the recomputation replays the random masks)."""
    kwargs = dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT, linear_transformer_depth=1, stereo=True,
                  attn_dropout=dropout, ff_dropout=dropout)
    torch.manual_seed(0)
    models = [perturb_(BSRoformer(**kwargs)), BSRoformer(**kwargs), BSRoformer(**kwargs, use_torch_checkpoint=True)]
    for model in models[1:]:
        model.load_state_dict(models[0].state_dict())
    for transformer in (t for block in models[0].layers for t in block):
        transformer.recompute_feedforward = False  # the reference keeps every activation
    audio, target = make_audio(2, 2, 64 * 20, seed=6), make_audio(2, 2, 64 * 20, seed=7)

    losses = []
    for model in models:
        torch.manual_seed(1)
        losses.append(model(audio, target=target))
        losses[-1].backward()
    for loss, model in zip(losses[1:], models[1:]):
        assert torch.allclose(loss, losses[0], rtol=1e-6)
        for (name, a), b in zip(models[0].named_parameters(), model.parameters()):
            if a.requires_grad:
                assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-7), name
