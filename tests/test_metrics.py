"""SDR metrics: known values, shapes and input kinds, silence, and agreement with museval (installed from PyPI)."""

import numpy as np
import pytest
import torch

from bs_roformer.metrics import chunk_sdr, global_sdr, nan_aggregate, si_sdr
from references import museval_chunk_sdr

SAMPLE_RATE = 44100


def test_global_sdr_of_a_known_signal_to_noise_ratio():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2, 44100))
    noise = rng.standard_normal((2, 44100))
    noise *= np.sqrt((reference**2).sum() / (noise**2).sum()) / 10 ** (12 / 20)  # 12 dB below the signal
    assert global_sdr(reference, reference + noise) == pytest.approx(12.0, abs=1e-6)


def test_shapes_and_input_kinds():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((4, 2, 8000)).astype(np.float32)
    estimate = reference + 0.3 * rng.standard_normal((4, 2, 8000)).astype(np.float32)
    for metric in (global_sdr, si_sdr):
        as_numpy = metric(reference, estimate)
        as_tensor = metric(torch.from_numpy(reference), torch.from_numpy(estimate))
        assert as_numpy.shape == (4,) and torch.is_tensor(as_tensor) and as_tensor.shape == (4,)
        np.testing.assert_allclose(as_tensor.numpy(), as_numpy, rtol=0, atol=1e-9)
        assert isinstance(metric(reference[0, :1], estimate[0, :1]), float)  # one mono stem


def test_si_sdr_ignores_the_estimates_scale_and_global_sdr_does_not():
    rng = np.random.default_rng(2)
    reference = rng.standard_normal((1, 2, 8000))
    estimate = reference + 0.2 * rng.standard_normal((1, 2, 8000))
    assert si_sdr(reference, 0.3 * estimate) == pytest.approx(si_sdr(reference, estimate), abs=1e-9)
    assert global_sdr(reference, 0.3 * estimate) < global_sdr(reference, estimate) - 3


def test_silent_reference_gives_no_nan():
    silent = np.zeros((2, 2, 44100 * 2))
    estimate = np.random.default_rng(3).standard_normal(silent.shape) * 0.01
    assert np.isfinite(global_sdr(silent, estimate)).all() and np.isfinite(si_sdr(silent, estimate)).all()
    medians = chunk_sdr(silent, estimate)
    assert np.isnan(medians).all()  # museval leaves silent frames out: nothing is left
    assert nan_aggregate([medians[0], 5.0, 7.0]) == 6.0
    assert np.isnan(nan_aggregate([np.nan]))


def synthetic_pair(seconds: float, seed: int, silent_seconds=None):
    """Two stereo stems and estimates with leakage, filtering and noise."""
    rng = np.random.default_rng(seed)
    length = int(seconds * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    reference = np.stack([
        np.stack([np.sin(2 * np.pi * 220 * t + phase) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) for phase in (0, 0.4)]),
        rng.standard_normal((2, length)) * np.exp(-((t % 0.5) * 8))[None],
    ]) * 0.3
    if silent_seconds:
        start, stop = (int(s * SAMPLE_RATE) for s in silent_seconds)
        reference[1, :, start:stop] = 0
    smeared = np.stack([np.convolve(channel, np.ones(5) / 5, mode="same") for channel in reference.reshape(4, -1)]).reshape(reference.shape)
    estimate = smeared + 0.15 * reference[::-1] + 0.02 * rng.standard_normal(reference.shape)
    return reference, estimate


@pytest.mark.parametrize("seconds, silent", [(4.0, None), (3.6, None), (4.5, (1.0, 2.4))], ids=["whole-seconds", "partial-last-frame", "silent-frames"])
def test_chunk_sdr_agrees_with_museval(seconds, silent):
    reference, estimate = synthetic_pair(seconds, seed=int(seconds * 10), silent_seconds=silent)
    medians, frames = chunk_sdr(reference, estimate, return_frames=True)
    expected = museval_chunk_sdr(reference, estimate)
    assert frames.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(frames), np.isnan(expected))
    assert np.nanmax(np.abs(frames - expected)) < 0.01
    np.testing.assert_allclose(medians, np.nanmedian(expected, axis=1), atol=0.01)


def test_chunk_sdr_pads_a_short_estimate_like_museval():
    reference, estimate = synthetic_pair(2.0, seed=5)
    short = estimate[..., :-3000]
    np.testing.assert_allclose(chunk_sdr(reference, short, return_frames=True)[1], museval_chunk_sdr(reference, short), atol=0.01)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must have the same shape"):
        global_sdr(np.zeros((2, 100)), np.zeros((1, 100)))
    with pytest.raises(ValueError, match=r"\(stems, channels, time\)"):
        chunk_sdr(np.zeros((2, 100)), np.zeros((2, 100)))
