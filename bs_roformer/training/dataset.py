"""Training data: random chunks of randomly remixed stems, and whole tracks for validation.

Every random choice for item `index` of epoch `epoch` comes from a generator seeded with
(seed, epoch, index), so an item is the same whatever the DataLoader's worker count or order, and a resumed
run sees exactly the data the interrupted one would have seen.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile
import torch

from .tracks import Track, find_tracks


def read_chunk(path: Path, start: int, frames: int, channels: int) -> np.ndarray:
    """(channels, frames) float32 from `start`, zero-padded past the end; mono is duplicated, more channels averaged."""
    audio, _ = soundfile.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    audio = audio.T
    if audio.shape[0] != channels:
        audio = np.repeat(audio[:1], channels, axis=0) if audio.shape[0] == 1 else audio.mean(axis=0, keepdims=True).repeat(channels, axis=0)
    if audio.shape[1] < frames:
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
    return np.ascontiguousarray(audio, dtype=np.float32)


class RandomChunkDataset(torch.utils.data.Dataset):
    """`length` random chunks per epoch: item -> (mixture (channels, chunk_size), stems (len(stems), channels, chunk_size)).

    mix_across_tracks: each stem from an independently drawn track and offset (random remixing); else all
        stems from one track and offset.
    gain_range: random gain per stem (None = off); channel_swap_probability, polarity_flip_probability:
        per stem. The mixture is the sum of the augmented stems.
    min_mean_abs: with remixing, a stem chunk quieter than this (mean |x| before gain) is drawn again, up
        to max_tries times, so targets are rarely silent (MSST's audio.min_mean_abs).
    """

    def __init__(
        self,
        tracks: Sequence[Track],
        stems: Sequence[str],
        chunk_size: int,
        *,
        channels: int = 2,
        length: int = 1000,
        seed: int = 0,
        mix_across_tracks: bool = True,
        gain_range: Optional[Tuple[float, float]] = (0.5, 1.5),
        channel_swap_probability: float = 0.5,
        polarity_flip_probability: float = 0.5,
        min_mean_abs: float = 0.0,
        max_tries: int = 20,
    ):
        if not tracks:
            raise ValueError("the dataset needs at least one track")
        self.tracks = list(tracks)
        self.stems = list(stems)
        self.chunk_size = int(chunk_size)
        self.channels = channels
        self.length = int(length)
        self.seed = seed
        self.epoch = 0
        self.mix_across_tracks = mix_across_tracks
        self.gain_range = gain_range
        self.channel_swap_probability = channel_swap_probability
        self.polarity_flip_probability = polarity_flip_probability
        self.min_mean_abs = min_mean_abs
        self.max_tries = max_tries

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        shared = None if self.mix_across_tracks else self._draw_position(rng)
        stems = np.stack([self._augment(self._stem_chunk(stem, rng, shared), rng) for stem in self.stems])
        return torch.from_numpy(stems.sum(axis=0)), torch.from_numpy(stems)

    def _draw_position(self, rng: np.random.Generator) -> Tuple[Track, int]:
        track = self.tracks[rng.integers(len(self.tracks))]
        return track, int(rng.integers(max(1, track.frames - self.chunk_size + 1)))

    def _stem_chunk(self, stem: str, rng: np.random.Generator, position: Optional[Tuple[Track, int]]) -> np.ndarray:
        if position is not None:
            track, start = position
            return read_chunk(track.stems[stem], start, self.chunk_size, self.channels)
        for _ in range(self.max_tries):
            track, start = self._draw_position(rng)
            chunk = read_chunk(track.stems[stem], start, self.chunk_size, self.channels)
            if np.abs(chunk).mean() >= self.min_mean_abs:
                break
        return chunk

    def _augment(self, chunk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # every draw happens whether or not it is used, so switching one augmentation off leaves the others' draws alone
        gain_draw = rng.random()
        gain = self.gain_range[0] + gain_draw * (self.gain_range[1] - self.gain_range[0]) if self.gain_range else 1.0
        swap = rng.random() < self.channel_swap_probability
        flip = rng.random() < self.polarity_flip_probability
        chunk = chunk * np.float32(gain * (-1.0 if flip else 1.0))
        return chunk[::-1].copy() if swap and chunk.shape[0] == 2 else chunk


class FullTrackDataset(torch.utils.data.Dataset):
    """Whole tracks: item -> (name, mixture (channels, t), stems (len(stems), channels, t)).

    The mixture is mixture.wav when the track has one, else the sum of the stems.
    """

    def __init__(self, tracks: Sequence[Track], stems: Sequence[str], channels: int = 2):
        self.tracks = list(tracks)
        self.stems = list(stems)
        self.channels = channels

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> Tuple[str, torch.Tensor, torch.Tensor]:
        track = self.tracks[index]
        stems = np.stack([read_chunk(track.stems[stem], 0, track.frames, self.channels) for stem in self.stems])
        mixture = read_chunk(track.mixture, 0, track.frames, self.channels) if track.mixture else stems.sum(axis=0)
        return track.name, torch.from_numpy(mixture), torch.from_numpy(stems)


def dataset_from_config(
    config: Dict[str, Any], root: Union[str, Path], *, seed: int = 0, length: Optional[int] = None
) -> RandomChunkDataset:
    """A RandomChunkDataset over the tracks in `root`, as an MSST config describes it.

    Reads audio.chunk_size, audio.sample_rate (44100), audio.num_channels (2), audio.min_mean_abs (0),
    training.instruments, training.num_steps x training.batch_size (the default length), and the
    augmentations section: enable (false turns every augmentation off), loudness with loudness_min /
    loudness_max (the gain range; default 0.5..1.5), mixup-free remixing across tracks (always on).
    """
    audio, training = config.get("audio") or {}, config.get("training") or {}
    augmentations = config.get("augmentations") or {}
    stems = list(training.get("instruments") or [])
    if not stems:
        raise ValueError("the config names no stems to train on: set training.instruments")
    if "chunk_size" not in audio:
        raise ValueError("the config has no audio.chunk_size (samples per training chunk)")
    enabled = augmentations.get("enable", True)
    gain_range = None
    if enabled and augmentations.get("loudness", True):
        gain_range = (float(augmentations.get("loudness_min", 0.5)), float(augmentations.get("loudness_max", 1.5)))
    return RandomChunkDataset(
        find_tracks(root, stems, sample_rate=int(audio.get("sample_rate", 44100))),
        stems,
        int(audio["chunk_size"]),
        channels=int(audio.get("num_channels", 2)),
        length=length or int(training.get("num_steps", 1000)) * int(training.get("batch_size", 1)),
        seed=seed,
        gain_range=gain_range,
        channel_swap_probability=0.5 if enabled else 0.0,
        polarity_flip_probability=0.5 if enabled else 0.0,
        min_mean_abs=float(audio.get("min_mean_abs", 0.0)),
    )
