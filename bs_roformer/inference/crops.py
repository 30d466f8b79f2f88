"""Separation in crops of STFT frames with context, over a stream: the frame-transformer's scheme, for any
model that masks magnitude spectrograms.

The track's centred STFT (reflect padding, as librosa < 0.9) has 1 + t // hop frames. Its magnitudes are
divided by their maximum over the whole track (a first pass over the stream, `spectrogram_max`), and cut
into crops of `crop_size` frames; each crop is given `padding` frames of context on both sides (zeros
beyond the track, as the reference pads the magnitudes), masked by the model, and the context is cut off
again. With several layouts (the reference's TTA: crops of 256, 512, 1024 and 2048 frames without context)
the masks are averaged. Masks multiply the complex STFT, and an overlap-add inverse streams the stems out.

With hop >= n_fft / 2 one frame past the track's own is added with the last frame's mask, so that the last
partial hop is covered by two windows and reconstructs (the reference's output stops a partial hop short;
see `tail_frames`).
Memory is bounded by a window of `lcm(crop sizes) * batch_size` frames, whatever the length.
"""

import math
from dataclasses import dataclass
from functools import reduce
from typing import Callable, Iterable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F

from ..modules.stft import centred_stft, reflect_indices, tail_frames

# masks_of(magnitudes (b, channels, bins, frames) scaled to at most 1) -> masks (b, stems, channels, bins, frames)
MaskCrops = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CropLayout:
    """Crops of `crop_size` frames, each with `padding` frames of context on both sides."""

    crop_size: int
    padding: int = 0

    def __post_init__(self):
        if self.crop_size < 1 or self.padding < 0:
            raise ValueError(f"crop size must be positive and padding not negative, got {self.crop_size} and {self.padding}")

    def num_crops(self, frames: int) -> int:
        return -(-frames // self.crop_size)


class FrameStream:
    """Centred STFT frames of a (channels, t) block stream of `length` samples, reflect-padded at both ends;
    `frames(first, stop)` in non-decreasing order of `first` keeps only the samples later calls need."""

    def __init__(self, blocks: Iterable[torch.Tensor], length: int, n_fft: int, hop_length: int, window: torch.Tensor):
        self.source = iter(blocks)
        self.length, self.n_fft, self.hop, self.window = length, n_fft, hop_length, window
        self.buffer: Optional[torch.Tensor] = None
        self.start = 0  # sample index of buffer[:, 0]
        last_frame = length // hop_length + tail_frames(n_fft, hop_length)
        # the reflection of the end reaches back this far for the last frames
        self.tail_start = max(0, 2 * (length - 1) - (last_frame * hop_length + n_fft // 2))

    def frames(self, first: int, stop: int) -> torch.Tensor:
        """(channels, n_fft / 2 + 1, stop - first) complex."""
        positions = reflect_indices(first * self.hop - self.n_fft // 2, (stop - 1) * self.hop + self.n_fft // 2, self.length)
        self._read_to(int(positions.max()) + 1)
        samples = self.buffer[:, positions - self.start]
        keep = max(0, min(first * self.hop - self.n_fft // 2, self.tail_start)) - self.start
        if keep > 0:
            self.buffer, self.start = self.buffer[:, keep:], self.start + keep
        return centred_stft(samples, self.n_fft, self.hop, self.window)

    def _read_to(self, end: int) -> None:
        while self.buffer is None or self.start + self.buffer.shape[-1] < end:
            block = next(self.source, None)
            if block is None:
                raise ValueError(f"the stream ended before its announced length of {self.length} samples")
            block = block.float()
            self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)


class OverlapAddStream:
    """The inverse of a centred STFT, frame batch by frame batch: push (..., bins, k) spectra of consecutive
    frames from frame 0 on, get the samples no later frame changes; `finish` gives the rest up to `length`."""

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor, length: int):
        self.n_fft, self.hop, self.window, self.length = n_fft, hop_length, window, length
        self.next_frame = 0
        self.sums: Optional[torch.Tensor] = None  # (n, samples) windowed frames added up, from padded position `origin`
        self.envelope = torch.zeros(0)
        self.origin = 0
        self.emitted = n_fft // 2  # padded position of the first real sample

    def push(self, spec: torch.Tensor) -> Iterator[torch.Tensor]:
        shape, count = spec.shape[:-2], spec.shape[-1]
        frames = torch.fft.irfft(spec.reshape(-1, *spec.shape[-2:]), n=self.n_fft, dim=-2) * self.window[:, None]
        span = self.n_fft + self.hop * (count - 1)
        added = F.fold(frames, (1, span), (1, self.n_fft), stride=(1, self.hop)).flatten(1)
        squares = self.window.square()[:, None].expand(-1, count)[None]
        envelope = F.fold(squares, (1, span), (1, self.n_fft), stride=(1, self.hop)).flatten()
        if self.sums is None:
            self.sums = added.new_zeros(added.shape[0], 0)
        offset = self.next_frame * self.hop - self.origin
        grow = offset + span - self.sums.shape[-1]
        if grow > 0:
            self.sums, self.envelope = F.pad(self.sums, (0, grow)), F.pad(self.envelope, (0, grow))
        self.sums[:, offset : offset + span] += added
        self.envelope[offset : offset + span] += envelope
        self.next_frame += count
        self.shape = shape
        yield from self._emit(self.next_frame * self.hop)

    def finish(self) -> Iterator[torch.Tensor]:
        yield from self._emit(self.length + self.n_fft // 2)

    def _emit(self, final: int) -> Iterator[torch.Tensor]:
        final = min(final, self.length + self.n_fft // 2)
        if final <= self.emitted:
            return
        lo, hi = self.emitted - self.origin, final - self.origin
        envelope = self.envelope[lo:hi]
        # as torch.istft and librosa: divide where the windows overlap at all
        out = self.sums[:, lo:hi] / torch.where(envelope > 1e-11, envelope, torch.ones_like(envelope))
        self.sums, self.envelope, self.origin, self.emitted = self.sums[:, hi:], self.envelope[hi:], final, final
        yield out.reshape(*self.shape, -1)


def spectrogram_max(blocks: Iterable[torch.Tensor], length: int, n_fft: int, hop_length: int, window: torch.Tensor,
                    frames_per_read: int = 1024) -> float:
    """The largest STFT magnitude of a (channels, t) stream of `length` samples (the first pass)."""
    stream = FrameStream(blocks, length, n_fft, hop_length, window)
    total = 1 + length // hop_length
    return max(float(stream.frames(first, min(total, first + frames_per_read)).abs().max())
               for first in range(0, total, frames_per_read))


def separate_in_crops(
    blocks: Iterable[torch.Tensor],
    length: int,
    masks_of: MaskCrops,
    layouts: Sequence[CropLayout],
    *,
    n_fft: int,
    hop_length: int,
    scale: float,
    batch_size: int = 1,
    on_crop: Optional[Callable[[int], None]] = None,
) -> Iterator[torch.Tensor]:
    """Separate a (channels, t) stream of `length` samples: yields (stems, channels, n) blocks, t samples
    in all. scale: the magnitude the crops are divided by (`spectrogram_max` of the same stream)."""
    window = torch.hann_window(n_fft)
    stream = FrameStream(blocks, length, n_fft, hop_length, window)
    inverse = OverlapAddStream(n_fft, hop_length, window, length)
    total = 1 + length // hop_length
    span = reduce(math.lcm, (layout.crop_size for layout in layouts)) * max(1, batch_size)
    context = max(layout.padding for layout in layouts)
    scale = scale if scale > 0 else 1.0  # silence: every magnitude is 0 either way
    mask = None
    for start in range(0, total, span):
        stop = min(start + span, total)
        first, last = max(0, start - context), min(total, stop + context)
        spec = stream.frames(first, last)
        magnitude = spec.abs() / scale
        mask = sum(_layout_masks(magnitude, first, start, stop, layout, masks_of, batch_size, on_crop) for layout in layouts)
        mask = mask / len(layouts) if len(layouts) > 1 else mask
        yield from inverse.push(mask * spec[:, :, start - first : stop - first])
    extra = tail_frames(n_fft, hop_length)
    if extra:
        yield from inverse.push(mask[..., -1:] * stream.frames(total, total + extra))
    yield from inverse.finish()


def _layout_masks(magnitude, first, start, stop, layout, masks_of, batch_size, on_crop) -> torch.Tensor:
    """Masks (stems, channels, bins, stop - start) of frames start..stop from the crops of one layout;
    magnitude holds frames first.. of the track (frames outside it are zeros)."""
    size, pad = layout.crop_size, layout.padding
    channels, bins, available = magnitude.shape
    crops = []
    for crop_start in range(start, stop, size):
        crop = magnitude.new_zeros(channels, bins, size + 2 * pad)
        lo, hi = max(crop_start - pad, first), min(crop_start + size + pad, first + available)
        crop[..., lo - (crop_start - pad) : hi - (crop_start - pad)] = magnitude[..., lo - first : hi - first]
        crops.append(crop)
    kept = []
    for index in range(0, len(crops), batch_size):
        batch = torch.stack(crops[index : index + batch_size])
        masks = masks_of(batch).float().cpu()[..., pad : pad + size]
        kept.extend(masks)
        if on_crop is not None:
            on_crop(len(batch))
    return torch.cat(kept, dim=-1)[..., : stop - start]


@dataclass(frozen=True)
class CropScheme:
    """How a model that masks magnitude crops (`crop_masks`: the frame-transformer family) separates a
    stream: its crop layout, or its TTA layouts, and its STFT."""

    layouts: Sequence[CropLayout]
    n_fft: int
    hop_length: int

    @classmethod
    def of(cls, model, tta: bool = False) -> Optional["CropScheme"]:
        """The model's scheme (None for models separated by overlap-add of waveform chunks)."""
        if not hasattr(model, "crop_masks"):
            return None
        if tta:
            layouts = tuple(CropLayout(size) for size in model.tta_crop_sizes)
        else:
            layouts = (CropLayout(model.crop_size, model.crop_padding),)
        return cls(layouts, model.stft_n_fft, model.stft_hop_length)

    def num_crops(self, length: int) -> int:
        frames = 1 + length // self.hop_length
        return sum(layout.num_crops(frames) for layout in self.layouts)

    def separate(
        self,
        blocks: Iterable[torch.Tensor],
        rescan: Callable[[], Iterable[torch.Tensor]],
        length: int,
        masks_of: MaskCrops,
        batch_size: int = 1,
        on_crop: Optional[Callable[[int], None]] = None,
    ) -> Iterator[torch.Tensor]:
        """(stems, channels, n) blocks of a (channels, t) stream; rescan() streams it again for the first
        pass, which finds the magnitude the whole track is scaled by."""
        window = torch.hann_window(self.n_fft)
        scale = spectrogram_max(rescan(), length, self.n_fft, self.hop_length, window)
        yield from separate_in_crops(
            blocks, length, masks_of, self.layouts, n_fft=self.n_fft, hop_length=self.hop_length, scale=scale,
            batch_size=batch_size, on_crop=on_crop,
        )
