"""Exactness against the reference implementations installed from PyPI (see references.py): the same
state-dict keys and shapes (strict loading), the same outputs, losses and gradients."""

from unittest import mock

import pytest
import torch

import references
from bs_roformer import BSRoformer, MelBandRoformer
from helpers import SMALL_BANDS, SMALL_STFT, TINY, assert_relative_close, assert_same_gradients, make_audio, perturb_

NO_DROPOUT = dict(attn_dropout=0.0, ff_dropout=0.0)
# settings under which our models compute what each reference's forward computes
AS_UPSTREAM_0_5_1 = dict(value_residual=True, zero_dc=False, match_input_audio_length=False)
AS_AUDIO_SEPARATOR = dict(zero_dc=False, match_input_audio_length=False)

CASES = {
    # name: (reference, model, shared kwargs, our extra kwargs, batch, channels, length)
    "upstream-bs-mono-default-bands": ("upstream", "bs", dict(), AS_UPSTREAM_0_5_1, 2, 1, 8 * 2048 + 123),
    "upstream-bs-stereo-4stems-noflash": (
        "upstream", "bs", dict(stereo=True, num_stems=4, flash_attn=False, freqs_per_bands=SMALL_BANDS, **SMALL_STFT),
        AS_UPSTREAM_0_5_1, 2, 2, 64 * 40 + 17,
    ),
    "upstream-bs-stereo-maskdepth1": (
        "upstream", "bs", dict(stereo=True, mask_estimator_depth=1, freqs_per_bands=SMALL_BANDS, **SMALL_STFT),
        AS_UPSTREAM_0_5_1, 1, 2, 64 * 33 + 5,
    ),
    "upstream-mel-mono-32bands": (
        "upstream", "mel", dict(num_bands=32), dict(AS_UPSTREAM_0_5_1, value_residual=False, linear_transformer_depth=1),
        2, 1, 8 * 2048 + 99,
    ),
    "upstream-mel-stereo-4stems-noflash-maskdepth2": (
        "upstream", "mel",
        dict(stereo=True, num_stems=4, num_bands=16, mask_estimator_depth=2, flash_attn=False, **SMALL_STFT),
        dict(AS_UPSTREAM_0_5_1, value_residual=False, linear_transformer_depth=1), 2, 2, 64 * 37 + 31,
    ),
    "msst-bs-stereo-linear-mlp2": (
        "audio_separator", "bs",
        dict(stereo=True, linear_transformer_depth=1, mlp_expansion_factor=2, freqs_per_bands=SMALL_BANDS, **SMALL_STFT),
        AS_AUDIO_SEPARATOR, 2, 2, 64 * 40 + 1,
    ),
    "msst-bs-mono-4stems-noflash-maskdepth1": (
        "audio_separator", "bs", dict(num_stems=4, flash_attn=False, mask_estimator_depth=1),
        AS_AUDIO_SEPARATOR, 1, 1, 8 * 2048 + 300,
    ),
    "msst-bs-mono-mask-depth3": (
        "audio_separator", "bs", dict(mask_estimator_depth=3, freqs_per_bands=SMALL_BANDS, **SMALL_STFT),
        AS_AUDIO_SEPARATOR, 2, 1, 64 * 30 + 63,
    ),
    "msst-mel-stereo-24bands": (
        "audio_separator", "mel", dict(stereo=True, num_bands=24), AS_AUDIO_SEPARATOR, 2, 2, 8 * 2048 + 7,
    ),
    "msst-mel-mono-4stems-maskdepth2-noflash": (
        "audio_separator", "mel", dict(num_stems=4, num_bands=16, mask_estimator_depth=2, flash_attn=False, **SMALL_STFT),
        AS_AUDIO_SEPARATOR, 2, 1, 64 * 25 + 40,
    ),
}


def reference_class(reference: str, model: str):
    namespace = getattr(references, reference)()
    return namespace.BSRoformer if model == "bs" else namespace.MelBandRoformer


def build_pair(reference: str, model: str, shared: dict, ours_extra: dict):
    """A reference model with perturbed weights, and ours loaded strictly from its state dict."""
    torch.manual_seed(0)
    kwargs = dict(TINY, **NO_DROPOUT, **shared)
    ref = perturb_(reference_class(reference, model)(**kwargs))
    ours = (BSRoformer if model == "bs" else MelBandRoformer)(**kwargs, **ours_extra)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def make_target(output: torch.Tensor, length: int, seed: int) -> torch.Tensor:
    shape = (*output.shape[:-1], length)
    return make_audio(shape[0], int(torch.tensor(shape[1:-1]).prod()), length, seed=seed).reshape(shape)


@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(case):
    reference, model, shared, ours_extra, batch, channels, length = CASES[case]
    ref, ours = build_pair(reference, model, shared, ours_extra)
    audio = make_audio(batch, channels, length, seed=1)

    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]

    # inference
    ref.eval(), ours.eval()
    with torch.no_grad():
        expected = ref(audio)
        assert_relative_close(f"{case}: output", ours(audio), expected)

    # loss with a target (train mode, dropout off) and the gradients of one step
    target = make_target(expected, length, seed=2)
    ref.train(), ours.train()
    ref_total, (ref_l1, ref_mrstft) = ref(audio, target=target, return_loss_breakdown=True)
    total, (l1, mrstft) = ours(audio, target=target, return_loss_breakdown=True)
    for name, value, expected_value in (("loss", total, ref_total), ("l1", l1, ref_l1), ("mrstft", mrstft, ref_mrstft)):
        assert_relative_close(f"{case}: {name}", value, expected_value)

    ref_total.backward()
    total.backward()
    assert_same_gradients(case, ours, ref)
