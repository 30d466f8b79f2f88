"""Lossless mode: stems that add up exactly to the mix.

A separation leaves a residual r = mix - sum(stems). The residual is separated again by the model, and each
stem receives what the model assigns to it (R_i). What the model leaves unassigned, a = r - sum(R_i), is
split between the *receiving* stems by their share of the stems' energy, measured over 2048-sample frames
and interpolated linearly between frames so the split never steps:

    stem_i = S_i + R_i + w_i * a,   sum(w_i) = 1   =>   sum(stem_i) = mix

Receivers: with the four MUSDB stems (or any set containing drums or percussion and other), drums take
the percussive leftovers and other the harmonic ones, so vocals and bass stay clean; for any other stem set
every stem receives. A single-stem model needs no second pass: its complement (mix - stem) completes it.
"""

from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import torch

FRAME = 2048
PERCUSSIVE = ("drums", "percussion")
HARMONIC = ("other",)


def receiving_stems(stems: Sequence[str]) -> List[int]:
    """Indices of the stems that share the unassigned residual."""
    percussive = [i for i, name in enumerate(stems) if name.lower() in PERCUSSIVE]
    harmonic = [i for i, name in enumerate(stems) if name.lower() in HARMONIC]
    if percussive and harmonic:
        return percussive + harmonic
    return list(range(len(stems)))


def complement_name(stem: str, instruments: Sequence[str]) -> str:
    """Name of mix - stem for a single-stem model: the config's other instrument, else `no_<stem>`."""
    others = [name for name in instruments if name != stem]
    return others[0] if len(others) == 1 else f"no_{stem}"


def _frames(stream: Iterable[Tuple[torch.Tensor, ...]], size: int) -> Iterator[Tuple[torch.Tensor, ...]]:
    """Re-cut a stream of aligned block tuples into frames of `size` samples (the last may be shorter)."""
    pending: Optional[Tuple[torch.Tensor, ...]] = None
    for blocks in stream:
        pending = blocks if pending is None else tuple(torch.cat(pair, dim=-1) for pair in zip(pending, blocks))
        while pending[0].shape[-1] >= size:
            yield tuple(block[..., :size] for block in pending)
            pending = tuple(block[..., size:] for block in pending)
    if pending is not None and pending[0].shape[-1]:
        yield pending


def _energy_shares(stems: torch.Tensor, receivers: List[int]) -> torch.Tensor:
    """(n,) share of each stem in the frame's energy, zero for non-receivers; equal shares in silence."""
    energy = torch.zeros(stems.shape[0], dtype=torch.float64)
    energy[receivers] = stems[receivers].double().pow(2).sum(dim=(-1, -2))
    total = energy.sum()
    if total <= 0:
        energy[receivers] = 1.0
        total = energy.sum()
    return energy / total


def distribute_residual(
    aligned_blocks: Iterable[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]], receivers: List[int]
) -> Iterator[torch.Tensor]:
    """(stems S, residual stems R, residual r) block triples -> lossless stems (n, channels, t) blocks.

    S and R are (n, channels, t), r is (channels, t).
    """
    previous_share = None
    held: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None  # one frame of lookahead
    held_share = None

    def finish(frame, share, before, after) -> torch.Tensor:
        stems, residual_stems, residual = frame
        t = frame[0].shape[-1]
        # weights run linearly from the mean with the previous frame's shares to the mean with the next's
        position = (torch.arange(t, dtype=torch.float64) + 0.5) / t
        start, end = (before + share) / 2, (share + after) / 2
        weights = start[:, None] + (end - start)[:, None] * position  # (n, t)
        unassigned = (residual.double() - residual_stems.double().sum(dim=0))[None]
        out = stems.double() + residual_stems.double() + weights[:, None, :] * unassigned
        return out.to(stems.dtype)

    for frame in _frames(aligned_blocks, FRAME):
        share = _energy_shares(frame[0], receivers)
        if held is not None:
            yield finish(held, held_share, held_share if previous_share is None else previous_share, share)
            previous_share = held_share
        held, held_share = frame, share
    if held is not None:
        yield finish(held, held_share, held_share if previous_share is None else previous_share, held_share)
