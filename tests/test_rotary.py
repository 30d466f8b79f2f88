"""Rotary embeddings are applied, and applied the same way, with every rotary-embedding-torch release
setup.py admits (the latest of each minor series is installed from PyPI into the test cache)."""

from unittest import mock

import pytest
import torch

import references
from bs_roformer import BSRoformer
from bs_roformer.modules import axial_transformer
from bs_roformer.modules.attention import Attention
from bs_roformer.modules.rotary import apply_rotary, rotary_tables
from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio, perturb_

# the oldest admitted release and the newest of every later minor series
ADMITTED_RELEASES = ["0.3.6", "0.4.0", "0.5.3", "0.6.5", "0.7.0", "0.8.9", "0.9.1"]


def test_attention_depends_on_positions():
    """Without rotation, self-attention commutes with permuting its tokens; with it, it must not."""
    torch.manual_seed(0)
    rotary_embed = axial_transformer.RotaryEmbedding(dim=16)
    with_rotary = perturb_(Attention(32, heads=2, dim_head=16, rotary_embed=rotary_embed))
    without_rotary = Attention(32, heads=2, dim_head=16)
    without_rotary.load_state_dict(with_rotary.state_dict(), strict=False)

    x = torch.randn(3, 50, 32)
    permutation = torch.randperm(50)
    for attention, commutes in ((without_rotary, True), (with_rotary, False)):
        permuted_then_attended = attention(x[:, permutation])[0]
        attended_then_permuted = attention(x)[0][:, permutation]
        assert torch.allclose(permuted_then_attended, attended_then_permuted, atol=1e-5) == commutes


def test_model_time_transformer_depends_on_frame_order():
    torch.manual_seed(0)
    model = perturb_(BSRoformer(**TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)).eval()
    time_transformer = model.layers[0].time
    x = torch.randn(4, 20, 32)
    permutation = torch.randperm(20)
    with torch.no_grad():
        difference = (time_transformer(x[:, permutation])[0] - time_transformer(x)[0][:, permutation]).abs().max()
    assert difference > 1e-3


@pytest.mark.parametrize("version", ADMITTED_RELEASES)
def test_rotation_matches_the_release_own_rotation(version):
    release = references.rotary_embedding_release(version)
    rotary_embed = release.RotaryEmbedding(dim=16)
    for seq_len in (37, 12, 37):  # repeated lengths exercise the release's caches
        q = torch.randn(2, 3, seq_len, 16)
        expected = rotary_embed.rotate_queries_or_keys(q)
        ours = apply_rotary(q, rotary_tables(rotary_embed, seq_len, q.device))
        assert torch.allclose(ours, expected, atol=1e-6), f"rotary-embedding-torch {version}"
        assert not torch.allclose(ours, q, atol=1e-3)


@pytest.mark.parametrize("version", ADMITTED_RELEASES)
def test_model_is_the_same_with_every_release(version):
    release = references.rotary_embedding_release(version)
    kwargs = dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
    torch.manual_seed(0)
    installed = perturb_(BSRoformer(**kwargs)).eval()
    with mock.patch.object(axial_transformer, "RotaryEmbedding", release.RotaryEmbedding):
        other = BSRoformer(**kwargs).eval()
    assert type(other.layers[0].time.layers[0][0].rotary_embed) is release.RotaryEmbedding
    other.load_state_dict(installed.state_dict(), strict=True)
    audio = make_audio(1, 1, 64 * 30, seed=0)
    with torch.no_grad():
        assert torch.equal(other(audio), installed(audio))


def test_rotation_stays_float32_under_reduced_precision():
    rotary_embed = axial_transformer.RotaryEmbedding(dim=64)
    q = torch.randn(1, 1, 2000, 64)
    exact = apply_rotary(q.double(), rotary_tables(rotary_embed, 2000, q.device))
    half = apply_rotary(q.bfloat16(), rotary_tables(rotary_embed, 2000, q.device))
    assert half.dtype == torch.bfloat16
    # bf16 positions would be off by up to 4 at position ~2000 (whole radians of phase); ours only round q
    assert (half.double() - exact).abs().max() < 0.05 * q.abs().max()
