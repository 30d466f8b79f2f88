"""Separation metrics: global SDR (MDX/SDX), chunk SDR (museval, BSSEval v4) and SI-SDR.

Every function takes a reference and an estimate of shape (..., channels, time), torch tensors or numpy
arrays, and returns one value per leading index (a float for a single (channels, time) stem), computed in
float64 over all channels and samples of a stem.

Aggregating over a test set, as papers report it:
- global SDR: the mean over stems and tracks (MDX'21 / SDX'23);
- chunk SDR: per track the median over 1-second frames, then the median over tracks (SiSEC / museval).
Silence: global SDR and SI-SDR stay finite for a silent reference (both add a small epsilon). Chunk SDR
leaves frames out where a reference or estimate is silent, as museval does; a track silent throughout gets
NaN, and `nan_aggregate` leaves such tracks out of the median or mean.
"""

from typing import Callable, Tuple, Union

import numpy as np
import torch

Signal = Union[np.ndarray, torch.Tensor]
GLOBAL_SDR_EPS = 1e-7  # as in the MDX challenge's and demucs' definition


def global_sdr(reference: Signal, estimate: Signal) -> Union[float, np.ndarray, torch.Tensor]:
    """10 log10((sum s^2 + eps) / (sum (s - s_hat)^2 + eps)) over channels and time: (..., c, t) -> (...)."""
    ref, est, wrap = _float64_pair(reference, estimate)
    signal = (ref**2).sum(axis=(-2, -1))
    error = ((ref - est) ** 2).sum(axis=(-2, -1))
    return wrap(10 * np.log10((signal + GLOBAL_SDR_EPS) / (error + GLOBAL_SDR_EPS)))


def si_sdr(reference: Signal, estimate: Signal, eps: float = 1e-8) -> Union[float, np.ndarray, torch.Tensor]:
    """Scale-invariant SDR (Le Roux et al. 2019), channels and time flattened into one signal: (..., c, t) -> (...)."""
    ref, est, wrap = _float64_pair(reference, estimate)
    ref = ref.reshape(*ref.shape[:-2], -1)
    est = est.reshape(*est.shape[:-2], -1)
    scale = (est * ref).sum(axis=-1, keepdims=True) / ((ref**2).sum(axis=-1, keepdims=True) + eps)
    target = scale * ref
    return wrap(10 * np.log10(((target**2).sum(axis=-1) + eps) / (((est - target) ** 2).sum(axis=-1) + eps)))


def chunk_sdr(
    reference: Signal, estimate: Signal, sample_rate: int = 44100, return_frames: bool = False
) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """museval's v4 SDR: (stems, c, t) -> (stems,) medians over 1-second frames (and (stems, frames) with return_frames).

    The stems are evaluated together, as museval.evaluate does: a frame where any stem's reference or
    estimate is silent is NaN for every stem. The estimate is cut or zero-padded to the reference's length,
    and only whole frames count, except that audio shorter than a frame is one frame.

    museval projects each estimate on the references through 512-tap time-invariant filters; in the SDR of
    v4 (bss_eval_images) the projected parts cancel, leaving each frame's signal-to-error ratio
    10 log10(sum s^2 / sum (s_hat - s)^2), which is computed here directly. (The filters matter to ISR, SIR
    and SAR, which this does not compute.)
    """
    ref, est, _ = _float64_pair(reference, estimate, allow_length_mismatch=True)
    if ref.ndim != 3:
        raise ValueError(f"chunk_sdr takes (stems, channels, time) arrays, got shape {ref.shape}")
    est = est[..., : ref.shape[-1]]
    est = np.pad(est, ((0, 0), (0, 0), (0, ref.shape[-1] - est.shape[-1])))
    length = ref.shape[-1]
    num_frames = length // sample_rate if length > sample_rate else 1
    frames = np.full((ref.shape[0], num_frames), np.nan)
    for index in range(num_frames):
        window = slice(index * sample_rate, min((index + 1) * sample_rate, length))
        ref_frame, est_frame = ref[..., window], est[..., window]
        if _any_silent(ref_frame) or _any_silent(est_frame):
            continue
        signal = (ref_frame**2).sum(axis=(1, 2))
        error = ((est_frame - ref_frame) ** 2).sum(axis=(1, 2))
        with np.errstate(divide="ignore"):
            frames[:, index] = 10 * np.log10(signal / error)
    medians = np.array([nan_aggregate(row) for row in frames])
    return (medians, frames) if return_frames else medians


def nan_aggregate(values, how: Callable = np.median) -> float:
    """`how` (np.median, np.mean) over the values that are not NaN; NaN only when all of them are."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(how(values)) if values.size else float("nan")


def _any_silent(frame: np.ndarray) -> bool:
    """museval's test: a stem whose channel sum is zero at every sample of the frame."""
    return bool((frame.sum(axis=1) == 0).all(axis=-1).any())


def _float64_pair(reference: Signal, estimate: Signal, allow_length_mismatch: bool = False):
    """Both as float64 numpy arrays, plus a function giving results back in the input's kind."""
    is_tensor = torch.is_tensor(reference)
    ref, est = (np.asarray(x.detach().cpu().double() if torch.is_tensor(x) else x, dtype=np.float64) for x in (reference, estimate))
    if ref.ndim < 2:
        raise ValueError(f"metrics take (..., channels, time) arrays, got shape {ref.shape}")
    if ref.shape[:-1] != est.shape[:-1] or (not allow_length_mismatch and ref.shape != est.shape):
        raise ValueError(f"reference {ref.shape} and estimate {est.shape} must have the same shape")

    def wrap(result: np.ndarray):
        if is_tensor:
            return torch.as_tensor(result)
        return float(result) if np.ndim(result) == 0 else result

    return ref, est, wrap
