"""SDR metrics: known values, shapes and input kinds, silence, and agreement with museval 0.4.1's BSSEval v4."""

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
    assert si_sdr(reference, reference + noise) == pytest.approx(12.0, abs=0.05)  # noise nearly orthogonal


def test_shapes_and_input_kinds():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((4, 2, 8000)).astype(np.float32)
    estimate = reference + 0.3 * rng.standard_normal((4, 2, 8000)).astype(np.float32)
    for metric in (global_sdr, si_sdr, chunk_sdr):
        as_numpy = metric(reference, estimate)
        as_tensor = metric(torch.from_numpy(reference), torch.from_numpy(estimate))
        assert as_numpy.shape == (4,) and torch.is_tensor(as_tensor) and as_tensor.shape == (4,)
        np.testing.assert_allclose(as_tensor.numpy(), as_numpy, rtol=0, atol=1e-9)
        np.testing.assert_allclose(metric(reference.astype(np.float64), estimate.astype(np.float64)), as_numpy, atol=1e-9)
        for stem in (reference[0, :1], reference[0]):  # one mono stem, one stereo stem
            assert isinstance(metric(stem, stem + 0.1), float)
    stacked = global_sdr(reference.reshape(2, 2, 2, 8000), estimate.reshape(2, 2, 2, 8000))  # (tracks, stems, c, t)
    np.testing.assert_allclose(stacked.reshape(4), global_sdr(reference, estimate))


def test_si_sdr_ignores_the_estimates_scale_and_global_sdr_does_not():
    rng = np.random.default_rng(2)
    reference = rng.standard_normal((1, 2, 8000))
    estimate = reference + 0.2 * rng.standard_normal((1, 2, 8000))
    assert si_sdr(reference, 0.3 * estimate) == pytest.approx(si_sdr(reference, estimate), abs=1e-9)
    assert global_sdr(reference, 0.3 * estimate) < global_sdr(reference, estimate) - 3


def test_a_perfect_estimate():
    reference = np.random.default_rng(3).standard_normal((2, 2, 44100))
    for metric in (global_sdr, si_sdr):
        assert (metric(reference, reference) > 100).all() and np.isfinite(metric(reference, reference)).all()
    # museval's frames come out near 500 dB here, rounding noise of its projections; chunk_sdr says inf
    assert np.isposinf(chunk_sdr(reference, reference)).all()


def test_silent_reference_gives_no_nan():
    silent = np.zeros((2, 2, 44100 * 2))
    estimate = np.random.default_rng(3).standard_normal(silent.shape) * 0.01
    for metric in (global_sdr, si_sdr):
        assert np.isfinite(metric(silent, estimate)).all() and metric(silent, silent) == pytest.approx([0, 0])
    medians = chunk_sdr(silent, estimate)
    assert np.isnan(medians).all()  # museval leaves silent frames out: nothing is left
    assert nan_aggregate([medians[0], 5.0, 7.0]) == 6.0
    assert nan_aggregate([medians[0], 5.0, 9.0], np.mean) == 7.0
    assert np.isnan(nan_aggregate([np.nan]))


def synthetic_pair(seconds: float, seed: int, silent_seconds=None, channels: int = 2):
    """Two stems (an amplitude-modulated tone, decaying noise bursts) and estimates with leakage, filtering and noise."""
    rng = np.random.default_rng(seed)
    length = int(seconds * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    reference = np.stack([
        np.stack([np.sin(2 * np.pi * 220 * t + phase) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) for phase in (0, 0.4)[:channels]]),
        rng.standard_normal((channels, length)) * np.exp(-((t % 0.5) * 8))[None],
    ]) * 0.3
    if silent_seconds:
        start, stop = (int(s * SAMPLE_RATE) for s in silent_seconds)
        reference[1, :, start:stop] = 0
    flat = reference.reshape(-1, length)
    smeared = np.stack([np.convolve(channel, np.ones(5) / 5, mode="same") for channel in flat]).reshape(reference.shape)
    estimate = smeared + 0.15 * reference[::-1] + 0.02 * rng.standard_normal(reference.shape)
    return reference, estimate


@pytest.mark.parametrize(
    "seconds, silent, channels, window, hop, trim",
    [
        (4.0, None, 2, None, None, 0),
        (3.6, None, 2, None, None, 3000),  # a partial last frame, and an estimate 3000 samples short
        (3.5, (1.0, 2.4), 2, None, None, 0),  # stem 1 silent through the second frame
        (3.2, (0.2, 0.9), 1, 66150, 33075, 0),  # mono, overlapping 1.5 s frames
    ],
    ids=["whole-seconds", "partial-frame-short-estimate", "silent-frame", "mono-overlapping"],
)
def test_chunk_sdr_agrees_with_museval(seconds, silent, channels, window, hop, trim):
    reference, estimate = synthetic_pair(seconds, seed=int(seconds * 10), silent_seconds=silent, channels=channels)
    estimate = estimate[..., : estimate.shape[-1] - trim]
    medians, frames = chunk_sdr(reference, estimate, window=window, hop=hop, return_frames=True)
    expected = museval_chunk_sdr(reference, estimate, window or SAMPLE_RATE, hop or SAMPLE_RATE)
    assert frames.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(frames), np.isnan(expected))
    assert np.nanmax(np.abs(frames - expected)) < 1e-9
    np.testing.assert_allclose(medians, np.nanmedian(expected, axis=1), atol=1e-9)
    if silent == (1.0, 2.4):
        # one stem's silence takes the frame from every stem evaluated with it, as in museval
        assert np.isnan(frames[:, 1]).all()
        assert not np.isnan(chunk_sdr(reference[:1], estimate[:1], return_frames=True)[1]).any()


def test_museval_frames():
    def frames(seconds, **kwargs):
        return chunk_sdr(*synthetic_pair(seconds, seed=4, channels=1), return_frames=True, **kwargs)[1].shape[-1]

    assert frames(3.99) == 3 and frames(4.0) == 4 and frames(0.5) == 1  # partial frames dropped; shorter than one: one
    assert frames(4.0, window=88200, hop=22050) == 5 and frames(4.0, window=SAMPLE_RATE * 10) == 1
    assert frames(2.0, sample_rate=22050) == 4  # 88200 samples read as 22.05 kHz audio: four 1-second frames


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="must have the same shape"):
        global_sdr(np.zeros((2, 100)), np.zeros((1, 100)))
    with pytest.raises(ValueError, match=r"\(stems, channels, time\)"):
        chunk_sdr(np.zeros((1, 2, 2, 100)), np.zeros((1, 2, 2, 100)))
