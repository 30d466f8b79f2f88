"""CPU inference: bf16 attention in query blocks, the norm's single rounding, groups across cores."""

import warnings

import pytest
import torch
import torch.nn.functional as F

from bs_roformer import BSRoformer
from bs_roformer.modules import attention, axial_transformer
from bs_roformer.modules.attention import attend
from bs_roformer.modules.cpu_workers import map_across_cores
from bs_roformer.modules.norm import RMSNorm
from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio


def attention_in_float64(q, k, v, scale):
    weights = (q.double() @ k.double().transpose(-1, -2) * scale).softmax(dim=-1)
    return weights @ v.double()


@pytest.mark.parametrize("length", [300, 7])  # blocks of 128 with a shorter last one; fewer queries than a block
def test_bf16_inference_attends_in_query_blocks_within_bf16_rounding(length):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, length, 16).bfloat16() for _ in range(3))
    expected = attention_in_float64(q, k, v, scale=0.3)
    with torch.no_grad():
        out = attend(q, k, v, flash=True, scale=0.3)
    assert out.dtype == torch.bfloat16 and out.shape == q.shape
    assert out.transpose(1, 2).is_contiguous()  # (b, i, h, d) memory: merging the heads is a view
    error = (out.double() - expected).abs().max() / expected.abs().max()
    assert error < 2e-2  # a few bf16 roundings (2^-8 each)
    fused = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    assert not torch.equal(out, fused)  # the blocked path ran, not the fused kernel


def test_bf16_attention_with_autograd_or_in_float32_is_the_fused_kernel():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 130, 8) for _ in range(3))
    assert torch.equal(attend(q, k, v, flash=True), F.scaled_dot_product_attention(q, k, v))
    half = [t.bfloat16().requires_grad_() for t in (q, k, v)]
    out = attend(*half, flash=True)
    assert torch.equal(out, F.scaled_dot_product_attention(*half))
    out.sum().backward()
    assert half[0].grad is not None


def test_query_block_size_does_not_change_the_result(monkeypatch):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 100, 8).bfloat16() for _ in range(3))
    with torch.no_grad():
        blocked = attend(q, k, v, flash=True)
        monkeypatch.setattr(attention, "QUERY_BLOCK", 1000)
        whole = attend(q, k, v, flash=True)
    assert torch.equal(blocked, whole)


def test_rms_norm_of_bf16_normalises_in_float32_rounds_once_and_does_not_warn():
    torch.manual_seed(0)
    norm = RMSNorm(32)
    with torch.no_grad():
        norm.gamma.copy_(torch.rand(32) + 0.5)
    x = torch.randn(5, 32).bfloat16()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "Mismatch dtype between input and weight"
        out = norm(x)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, F.rms_norm(x.float(), (32,), norm.gamma, norm.eps).bfloat16())


def test_groups_across_cores_give_the_same_output_in_the_callers_modes(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen = []

        def work(item):
            seen.append((torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"), torch.get_num_threads()))
            return item * 2

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            assert map_across_cores(work, range(5)) == [0, 2, 4, 6, 8]
        assert seen == [(True, True, 1)] * 5
        assert torch.get_num_threads() == 2  # restored

        torch.manual_seed(0)
        model = BSRoformer(**TINY, stereo=True, freqs_per_bands=SMALL_BANDS, **SMALL_STFT, value_residual=True).eval()
        audio = make_audio(2, 2, 8192)  # two items: at least two groups per axis
        outputs = []
        for across in (True, False):
            monkeypatch.setattr(axial_transformer, "GROUPS_ACROSS_CORES", across)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                outputs.append(model(audio))
        assert torch.equal(*outputs)
    finally:
        torch.set_num_threads(threads)
