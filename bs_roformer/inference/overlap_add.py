"""Chunked overlap-add inference over a stream: any model, any length, bounded memory.

The signal is padded at both ends by the overlap (reflected, or zeros when the signal is too short to
reflect), cut into chunks every `step` samples, and each chunk's output is weighted by a window with
linear cross-fades. Every output sample is the weighted sum of the chunks covering it divided by the sum
of their weights, so an identity model returns its input to float precision, for any length.

Two bugs of the common implementation are avoided by construction: windows are built fresh for every chunk
(never a cached window modified in place), and whether a chunk is the first or the last — which decides
whether it fades in or out — is decided per chunk, not per batch.
"""

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, List, Optional

import torch
import torch.nn.functional as F

# separate(chunks (b, channels, chunk)) -> stems (b, stems, channels, chunk)
SeparateChunks = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ChunkLayout:
    """Where chunks start and how they are weighted."""

    chunk_size: int
    step: int
    fade: int

    @classmethod
    def from_overlap(cls, chunk_size: int, num_overlap: int) -> "ChunkLayout":
        """`num_overlap` chunks cover each sample (MSST's inference.num_overlap); fades of chunk / 10."""
        if chunk_size < 1 or num_overlap < 1:
            raise ValueError(f"chunk size ({chunk_size}) and overlap ({num_overlap}) must be positive")
        step = max(1, chunk_size // num_overlap)
        return cls(chunk_size=chunk_size, step=step, fade=min(chunk_size // 10, chunk_size - step))

    @property
    def pad(self) -> int:
        """Context added at each end of the signal: the overlap between neighbouring chunks."""
        return self.chunk_size - self.step

    def window(self, first: bool, last: bool) -> torch.Tensor:
        """(chunk_size,) weights: linear ramps, strictly positive, except where the signal starts or ends."""
        window = torch.ones(self.chunk_size)
        ramp = torch.arange(1, self.fade + 1, dtype=torch.float32) / (self.fade + 1)
        if self.fade and not first:
            window[: self.fade] = ramp
        if self.fade and not last:
            window[-self.fade :] = ramp.flip(0)
        return window

    def num_chunks(self, length: int) -> int:
        padded = length + 2 * self.pad
        return 1 + max(0, -(-(padded - self.chunk_size) // self.step))


def overlap_add(
    blocks: Iterable[torch.Tensor],
    separate: SeparateChunks,
    layout: ChunkLayout,
    batch_size: int = 1,
    on_chunk: Optional[Callable[[int], None]] = None,
) -> Iterator[torch.Tensor]:
    """Separate a (channels, t) stream chunk by chunk: yields (stems, channels, n) blocks, t samples in all."""
    chunk, step, pad = layout.chunk_size, layout.step, layout.pad
    source = iter(blocks)
    buffer: Optional[torch.Tensor] = None  # the input, in padded coordinates from buffer_start
    buffer_start = 0
    real_read = 0  # real samples read so far
    length: Optional[int] = None  # the real length, known at the end of the stream
    reflect = None  # whether the ends are reflected (else zero-padded)

    accumulated: Optional[torch.Tensor] = None  # (stems, channels, n) weighted outputs from accumulated_start
    weights: Optional[torch.Tensor] = None
    accumulated_start = 0
    emitted = pad  # padded position up to which output was emitted
    next_chunk = 0
    pending: List[int] = []

    def read_more() -> bool:
        nonlocal buffer, real_read, length
        block = next(source, None)
        if block is None:
            length = real_read
            return False
        block = block.float()
        buffer = block if buffer is None else torch.cat([buffer, block], dim=-1)
        real_read += block.shape[-1]
        return True

    def chunk_at(start: int) -> torch.Tensor:
        offset = start - buffer_start
        piece = buffer[:, max(offset, 0) : offset + chunk]
        return F.pad(piece, (max(-offset, 0), chunk - piece.shape[-1] - max(-offset, 0)))

    def run(starts: List[int]) -> Iterator[torch.Tensor]:
        nonlocal accumulated, weights, accumulated_start, emitted
        total = None if length is None else length + 2 * pad
        outputs = separate(torch.stack([chunk_at(start) for start in starts])).to("cpu", torch.float32)
        if outputs.shape[-1] != chunk:
            raise ValueError(f"the model returned {outputs.shape[-1]} samples for a chunk of {chunk}")
        for start, output in zip(starts, outputs):
            window = layout.window(first=start == 0, last=total is not None and start + chunk >= total)
            end = start + chunk
            if accumulated is None:
                accumulated, weights, accumulated_start = torch.zeros(*output.shape[:-1], 0), torch.zeros(0), start
            grow = end - (accumulated_start + accumulated.shape[-1])
            if grow > 0:
                accumulated = F.pad(accumulated, (0, grow))
                weights = F.pad(weights, (0, grow))
            accumulated[..., start - accumulated_start : end - accumulated_start] += output * window
            weights[start - accumulated_start : end - accumulated_start] += window
            if on_chunk is not None:
                on_chunk(1)
        # everything before the next chunk's start is final
        final_end = starts[-1] + step if total is None or starts[-1] + chunk < total else length + pad
        final_end = min(final_end, length + pad) if length is not None else final_end
        if final_end > emitted:
            lo, hi = emitted - accumulated_start, final_end - accumulated_start
            covered = weights[lo:hi]
            if (covered <= 0).any():
                raise RuntimeError("overlap-add left samples without any chunk: this is a bug, please report it")
            yield accumulated[..., lo:hi] / covered
            emitted = final_end
        # later chunks add from the next chunk's start on; before the first real sample nothing is emitted
        keep_from = min(emitted, starts[-1] + step)
        keep = keep_from - accumulated_start
        accumulated, weights, accumulated_start = accumulated[..., keep:], weights[keep:], keep_from

    while True:
        # decide how the start is padded once enough is known
        while reflect is None:
            if not read_more() or real_read > pad:
                if real_read == 0:
                    return
                reflect = real_read > pad
                head = buffer[:, 1 : pad + 1].flip(-1) if reflect else buffer.new_zeros(buffer.shape[0], pad)
                buffer = torch.cat([head, buffer], dim=-1)
        # a chunk that ends before the real samples read so far run out is complete and not the last
        while length is None and pad + real_read < next_chunk + chunk:
            read_more()
        if length is not None and buffer is not None and buffer.shape[-1] + buffer_start == real_read + pad:
            tail = buffer[:, -pad - 1 : -1].flip(-1) if reflect and pad else buffer.new_zeros(buffer.shape[0], pad)
            buffer = torch.cat([buffer, tail], dim=-1)
        last_start = None if length is None else (layout.num_chunks(length) - 1) * step
        if last_start is not None and next_chunk > last_start:
            if pending:
                yield from run(pending)
            return
        pending.append(next_chunk)
        next_chunk += step
        if len(pending) == batch_size or (last_start is not None and pending[-1] == last_start):
            yield from run(pending)
            pending = []
            # drop input no later chunk needs, keeping enough to reflect the end
            drop = min(next_chunk, buffer_start + buffer.shape[-1] - pad - 1) - buffer_start
            if length is None and drop > 0:
                buffer, buffer_start = buffer[:, drop:], buffer_start + drop
