"""Audio as a stream of blocks, so that a track of any length is processed in bounded memory.

A block is a tensor (..., samples); a stream is an iterator of blocks along the sample axis. Streams from
different stages are re-cut to common block boundaries with `aligned`.
"""

from typing import Callable, Iterable, Iterator, Optional, Tuple

import numpy as np
import soxr
import torch

Blocks = Iterator[torch.Tensor]
BlockSource = Callable[[], Blocks]  # a stream that can be read again from the start

DEFAULT_BLOCK = 1 << 16


def split(signal: torch.Tensor, block: int = DEFAULT_BLOCK) -> Blocks:
    """(..., t) -> blocks of `block` samples (the last may be shorter)."""
    for start in range(0, signal.shape[-1], block):
        yield signal[..., start : start + block]


def gather(blocks: Iterable[torch.Tensor]) -> torch.Tensor:
    """Concatenate a (short) stream into one tensor."""
    return torch.cat(list(blocks), dim=-1)


def aligned(*streams: Iterable[torch.Tensor]) -> Iterator[Tuple[torch.Tensor, ...]]:
    """Tuples of equally long blocks from streams of equal total length."""
    iterators = [iter(stream) for stream in streams]
    pending = [None] * len(iterators)
    while True:
        for index, iterator in enumerate(iterators):
            while pending[index] is None or pending[index].shape[-1] == 0:
                pending[index] = next(iterator, None)
                if pending[index] is None:
                    break
        ended = [block is None for block in pending]
        if all(ended):
            return
        if any(ended):
            raise ValueError("streams of different lengths cannot be aligned")
        length = min(block.shape[-1] for block in pending)
        yield tuple(block[..., :length] for block in pending)
        pending = [block[..., length:] for block in pending]


def resampled(blocks: Iterable[torch.Tensor], from_rate: int, to_rate: int, length: Optional[int] = None) -> Blocks:
    """Resample a (channels, t) stream with soxr (high quality); with `length`, exactly that many samples."""
    if from_rate == to_rate:
        yield from blocks
        return
    stream = None
    produced = 0

    def emit(out: np.ndarray):
        nonlocal produced
        if length is not None:
            out = out[: max(0, length - produced)]
        produced += out.shape[0]
        return torch.from_numpy(np.ascontiguousarray(out.T))

    for block in blocks:
        if stream is None:
            channels = block.shape[0]
            stream = soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32", quality="HQ")
        out = stream.resample_chunk(np.ascontiguousarray(block.T.numpy(), dtype=np.float32), last=False)
        if out.shape[0]:
            yield emit(out)
    if stream is None:
        return
    tail = emit(stream.resample_chunk(np.zeros((0, channels), dtype=np.float32), last=True))
    if tail.shape[-1]:
        yield tail
    if length is not None and produced < length:
        yield torch.zeros(channels, length - produced)


def resampled_length(length: int, from_rate: int, to_rate: int) -> int:
    """Samples after resampling `length` samples (rounded to the nearest)."""
    return int(round(length * to_rate / from_rate))
