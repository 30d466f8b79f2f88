"""CPU inference: the norm's single rounding of bf16, the groups across cores."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bs_roformer import BSRoformer
from bs_roformer.modules import axial_transformer
from bs_roformer.modules.cpu_workers import map_across_cores
from bs_roformer.modules.norm import RMSNorm
from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio


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


@pytest.fixture
def two_threads():
    """Two intra-op threads (the machine may run tests with one), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def tiny_model(**settings) -> BSRoformer:
    torch.manual_seed(0)
    return BSRoformer(**TINY, stereo=True, freqs_per_bands=SMALL_BANDS, **SMALL_STFT, **settings).eval()


def test_groups_across_cores_give_the_same_output_in_the_callers_modes(two_threads, monkeypatch):
    seen = []

    def work(item):
        seen.append((torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"), torch.get_num_threads()))
        return item * 2

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert map_across_cores(work, range(5)) == [0, 2, 4, 6, 8]
    assert seen == [(True, True, 1)] * 5
    assert torch.get_num_threads() == 2  # restored

    model = tiny_model(value_residual=True)
    audio = make_audio(2, 2, 8192)  # two items: at least two groups per axis
    outputs = []
    for across in (True, False):
        monkeypatch.setattr(axial_transformer, "GROUPS_ACROSS_CORES", across)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            outputs.append(model(audio))
    assert torch.equal(*outputs)


def test_a_dispatch_mode_sees_every_group(two_threads, monkeypatch):
    """FlopCounterMode (bench/speed.py's GFLOP/s) is thread-local: the groups then stay in the caller's thread."""
    model, audio = tiny_model(), make_audio(2, 2, 8192)
    counted = []
    for across in (True, False):
        monkeypatch.setattr(axial_transformer, "GROUPS_ACROSS_CORES", across)
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model(audio)
        counted.append(counter.get_total_flops())
    assert counted[0] == counted[1] > 0
