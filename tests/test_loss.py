"""The training losses equal their textbook definitions: two transforms and an L1 between them."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from bs_roformer import BSRoformer
from bs_roformer.metrics import global_sdr
from bs_roformer.modules.loss import MultiResolutionSTFTLoss, negative_sdr
from helpers import two_transform_mrstft


def loss_and_gradient(loss_fn, estimate, target):
    estimate = estimate.clone().requires_grad_(True)
    loss = loss_fn(estimate, target)
    (gradient,) = torch.autograd.grad(loss, estimate)
    return loss.detach(), gradient


@pytest.mark.parametrize(
    "window_sizes, hop_length, min_n_fft, normalized, window_fn, quarter",
    [
        ((4096, 2048, 1024, 512, 256), 147, 2048, False, torch.hann_window, False),  # the models' default
        ((512, 256, 128), 64, 256, True, torch.hann_window, False),
        ((300, 1000), 100, 512, False, torch.hamming_window, False),  # odd padding of a shorter window
        ((1024, 256), 147, 256, False, torch.hann_window, True),  # hop at least a quarter window
    ],
)
def test_multi_resolution_stft_loss_equals_two_transforms(window_sizes, hop_length, min_n_fft, normalized, window_fn, quarter):
    torch.manual_seed(0)
    estimate, target = torch.randn(2, 3, 2, 9000), torch.randn(2, 3, 2, 9000)
    ours = MultiResolutionSTFTLoss(window_sizes, hop_length, min_n_fft, normalized, window_fn, quarter)
    reference = lambda e, t: two_transform_mrstft(e, t, window_sizes, hop_length, min_n_fft, normalized, window_fn, quarter)  # noqa: E731

    loss, gradient = loss_and_gradient(ours, estimate, target)
    expected_loss, expected_gradient = loss_and_gradient(reference, estimate, target)
    assert torch.allclose(loss, expected_loss, rtol=1e-6, atol=0)
    assert (gradient - expected_gradient).abs().max() <= 1e-6 * expected_gradient.abs().max()


def test_model_losses_equal_their_definitions():
    torch.manual_seed(0)
    model = BSRoformer(dim=16, depth=1, stereo=True, num_stems=2, freqs_per_bands=(64,) * 8 + (1,), stft_n_fft=1024,
                       stft_win_length=1024, stft_hop_length=256, loss="t+tf+mrstft+sdr",
                       multi_stft_resolutions_window_sizes=(1024, 256), multi_stft_hop_size=128)
    mix, target = torch.randn(2, 2, 4096), torch.randn(2, 2, 2, 4096)
    total, (waveform, spectral, multi_resolution, sdr) = model(mix, target=target, return_loss_breakdown=True)

    estimate = model(mix)
    as_batch = "b n s t -> (b n) s t"
    assert torch.allclose(waveform, F.l1_loss(estimate, target))
    expected_spectral = F.l1_loss(model.stft(rearrange(estimate, as_batch)), model.stft(rearrange(target, as_batch)))
    assert torch.allclose(spectral, expected_spectral, rtol=1e-6, atol=0)
    expected_multi = two_transform_mrstft(estimate, target, (1024, 256), 128, 1024, False, torch.hann_window)
    assert torch.allclose(multi_resolution, expected_multi, rtol=1e-6, atol=0)
    as_one_track = "b n s t -> n s (b t)"
    expected_sdr = -global_sdr(rearrange(target, as_one_track), rearrange(estimate.detach(), as_one_track)).mean()
    assert torch.allclose(sdr, expected_sdr.float(), rtol=1e-5, atol=1e-5)
    assert torch.allclose(total, waveform + spectral + multi_resolution + sdr)


def test_negative_sdr_is_minus_the_global_sdr_of_each_stem_over_the_batch():
    torch.manual_seed(0)
    target = torch.randn(2, 3, 2, 500, dtype=torch.float64)
    estimate = (target + 0.3 * torch.randn_like(target)).requires_grad_(True)
    target[0, 1] = 0  # a silent chunk of stem 1: its error adds to the batch's, the loss stays finite
    as_one_track = "b n c t -> n c (b t)"
    expected = -global_sdr(rearrange(target, as_one_track), rearrange(estimate.detach(), as_one_track)).mean()
    assert torch.allclose(negative_sdr(estimate, target), expected, rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(negative_sdr, (estimate, target))
    # under bf16 the sums are still taken in float32
    assert negative_sdr(estimate.detach().bfloat16(), target.bfloat16()).dtype == torch.float32


def test_multi_resolution_stft_loss_of_a_perfect_estimate_has_zero_gradient():
    target = torch.randn(2, 5000)
    loss, gradient = loss_and_gradient(MultiResolutionSTFTLoss((512, 256), 64, 256), target, target)
    assert loss.item() == 0.0
    assert torch.equal(gradient, torch.zeros_like(gradient))
