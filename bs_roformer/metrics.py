"""Separation metrics: global SDR (MDX/SDX), chunk SDR (museval, BSSEval v4) and SI-SDR.

Every function takes a reference and an estimate of shape (..., channels, time) (mono or stereo), torch
tensors or numpy arrays, computes in float64 over all channels and samples of a stem, and gives its result
back in the input's kind: a tensor for tensors, a numpy array (a float for a single stem) for arrays.

Aggregating over a test set, as papers report it:
- global SDR: the mean over stems and tracks (MDX'21 / SDX'23);
- chunk SDR: per track and stem the median over 1-second frames, then the median over tracks (SiSEC / museval).
Silence: global SDR and SI-SDR stay finite for a silent reference (both add a small epsilon). Chunk SDR
leaves frames out where a reference or estimate is silent, as museval does; a stem silent throughout gets
NaN (museval refuses it with a ValueError), and `nan_aggregate` (a nanmedian / nanmean) leaves such tracks
out of the median or mean.
"""

import math
from typing import Callable, Optional, Union

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
    """Scale-invariant SDR (Le Roux et al. 2019), channels and time flattened into one signal: (..., c, t) -> (...).

    One optimal scale per stem, shared by its channels, so a wrong balance between channels is an error
    (as it is for global SDR). No mean is removed. The epsilon keeps a silent reference finite: the target
    is then zero and the result 10 log10(eps / (sum s_hat^2 + eps)), very negative (0 dB if both are silent).
    """
    ref, est, wrap = _float64_pair(reference, estimate)
    ref = ref.reshape(*ref.shape[:-2], -1)
    est = est.reshape(*est.shape[:-2], -1)
    scale = (est * ref).sum(axis=-1, keepdims=True) / ((ref**2).sum(axis=-1, keepdims=True) + eps)
    target = scale * ref
    return wrap(10 * np.log10(((target**2).sum(axis=-1) + eps) / (((est - target) ** 2).sum(axis=-1) + eps)))


def chunk_sdr(
    reference: Signal,
    estimate: Signal,
    sample_rate: int = 44100,
    window: Optional[float] = None,
    hop: Optional[float] = None,
    return_frames: bool = False,
):
    """museval's v4 SDR: (stems, c, t) -> (stems,) medians over frames, and (stems, frames) with return_frames.

    The same numbers as museval.evaluate(references, estimates, win=window, hop=hop, mode='v4'), `window`
    and `hop` in samples (default: one second each). A single (c, t) stem gives a scalar and (frames,).

    The stems are evaluated together, as museval does: a frame where any stem's reference or estimate is
    silent is NaN for every stem, so pass all the stems of a track at once to match museval's MUSDB scores
    (eval_mus_track evaluates the targets together; vocals with accompaniment when both are given).
    The estimate is cut or zero-padded to the reference's length; the frames are museval's (a partial
    last frame is left out, audio shorter than a window is one frame). The median leaves NaN frames out.

    museval projects each estimate on the references through 512-tap time-invariant filters; in the SDR of
    v4 (bss_eval_images) the projected parts cancel, leaving each frame's signal-to-error ratio
    10 log10(sum s^2 / sum (s_hat - s)^2), which is computed here directly (inf for a perfect frame, where
    museval's rounding noise gives some 500 dB). The filters matter only to ISR, SIR and SAR, which this
    does not compute.
    """
    ref, est, wrap = _float64_pair(reference, estimate, allow_length_mismatch=True)
    single = ref.ndim == 2
    if single:
        ref, est = ref[None], est[None]
    if ref.ndim != 3:
        raise ValueError(f"chunk_sdr takes (stems, channels, time) arrays, got shape {ref.shape}")
    length = ref.shape[-1]
    est = est[..., :length]
    est = np.pad(est, ((0, 0), (0, 0), (0, length - est.shape[-1])))
    windows = _frames(length, window or sample_rate, hop or sample_rate)
    frames = np.full((ref.shape[0], len(windows)), np.nan)
    for index, frame in enumerate(windows):
        ref_frame, est_frame = ref[..., frame], est[..., frame]
        if _any_silent(ref_frame) or _any_silent(est_frame):
            continue
        signal = (ref_frame**2).sum(axis=(1, 2))
        error = ((est_frame - ref_frame) ** 2).sum(axis=(1, 2))
        with np.errstate(divide="ignore"):
            frames[:, index] = 10 * np.log10(signal / error)
    medians = np.array([nan_aggregate(row) for row in frames])
    if single:
        medians, frames = medians[0], frames[0]
    return (wrap(medians), wrap(frames)) if return_frames else wrap(medians)


def nan_aggregate(values, how: Callable = np.median) -> float:
    """`how` (np.median, np.mean) over the values that are not NaN: (n,) -> float, NaN only when all are."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    return float(how(values)) if values.size else float("nan")


def _frames(length: int, window: float, hop: float) -> list:
    """museval's Framing: floored starts and stops, a partial last frame dropped, one frame if window >= length."""
    if window >= length:
        return [slice(0, length)]
    count = math.floor((length - window + hop) / hop)
    return [slice(math.floor(i * hop), math.floor(min(i * hop + window, length))) for i in range(count)]


def _any_silent(frame: np.ndarray) -> bool:
    """museval's test: a stem whose channel sum is zero at every sample of the frame (so L = -R counts too)."""
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
