"""Training data: random chunks of randomly remixed stems, and whole tracks for validation.

Every random choice for item `index` of epoch `epoch` comes from a generator seeded with
(seed, epoch, index), so an item is the same whatever the DataLoader's worker count or order, and a resumed
run sees exactly the data the interrupted one would have seen.
"""

import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..inference import audio_io
from .tracks import Track, find_tracks


def read_chunk(path: Path, start: int, frames: int, channels: int) -> np.ndarray:
    """(channels, frames) float32 from `start`, zero-padded past the end, in `channels` (see `match_channels`)."""
    audio = match_channels(audio_io.read_frames(path, start, frames).numpy(), channels)
    if audio.shape[1] < frames:
        audio = np.pad(audio, ((0, 0), (0, frames - audio.shape[1])))
    return np.ascontiguousarray(audio, dtype=np.float32)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(c, n) -> (channels, n): mono is duplicated into both channels (the dual mono separation feeds a stereo
    model), stereo averaged for a mono model; files of more channels are refused, as separation refuses them."""
    audio_io.check_channels(audio.shape[0], "the audio")
    if audio.shape[0] == channels:
        return audio
    return np.repeat(audio, channels, axis=0) if audio.shape[0] == 1 else audio.mean(axis=0, keepdims=True)


def _check_stems(tracks: Sequence[Track], stems: Sequence[str]) -> None:
    if not stems:
        raise ValueError("no stems given: name the stems to load, e.g. ['vocals', 'drums', 'bass', 'other']")
    missing = sorted({f"{track.name}: {stem}" for track in tracks for stem in stems if stem not in track.stems})
    if missing:
        raise ValueError(f"tracks were found without these stems ({', '.join(missing[:5])}); call find_tracks with the same stems")


class RandomChunkDataset(torch.utils.data.Dataset):
    """`length` random chunks per epoch: item -> (mixture (channels, chunk_size), stems (len(stems), channels, chunk_size)).

    mix_across_tracks: each stem from an independently drawn track and offset (random remixing); else (the
        default) all stems from one track and offset.
    gain_range: random gain per stem, e.g. (0.5, 1.5); channel_swap_probability, polarity_flip_probability:
        per stem. All off by default, as in MSST. The mixture is the sum of the augmented stems.
    min_mean_abs: a stem chunk quieter than this (mean |x| before gain) is drawn again, at most max_tries
        draws in all, so targets are rarely silent (MSST's audio.min_mean_abs). Without remixing the whole
        position is drawn again until every stem is audible, as MSST's aligned loading does.
    mixup_probabilities: with remixing, the k-th extra chunk of the same stem (another track and offset,
        augmented on its own) is layered in with probability p_k and the layers averaged (MSST's mixup).
    stem_dropout_probabilities: {stem: p}: the stem is silent in an item with probability p, so the mixture
        lacks it and its target is silence (frame-transformer's vocal-free items, p 0.025 for the vocals).
    mono_dropout_probabilities: {stem: p}: one channel of a stereo stem, either one, is silenced with
        probability p (frame-transformer's mono drop-out, p 0.025 for the vocals).
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
        mix_across_tracks: bool = False,
        gain_range: Optional[Tuple[float, float]] = None,
        channel_swap_probability: float = 0.0,
        polarity_flip_probability: float = 0.0,
        min_mean_abs: float = 0.0,
        max_tries: int = 20,
        mixup_probabilities: Sequence[float] = (),
        stem_dropout_probabilities: Mapping[str, float] = {},
        mono_dropout_probabilities: Mapping[str, float] = {},
    ):
        if not tracks:
            raise ValueError("the dataset needs at least one track")
        _check_stems(tracks, stems)
        if int(chunk_size) < 1 or channels not in (1, 2) or int(max_tries) < 1 or int(length) < 0:
            raise ValueError(f"need chunk_size >= 1, channels 1 or 2, max_tries >= 1 and length >= 0; got "
                             f"{chunk_size}, {channels}, {max_tries} and {length}")
        if gain_range is not None and not 0 <= gain_range[0] <= gain_range[1]:
            raise ValueError(f"gain_range must be (low, high) with 0 <= low <= high, got {gain_range}")
        probabilities = [channel_swap_probability, polarity_flip_probability, *mixup_probabilities,
                         *stem_dropout_probabilities.values(), *mono_dropout_probabilities.values()]
        if not all(0 <= p <= 1 for p in probabilities):
            raise ValueError(f"probabilities must be between 0 and 1, got {probabilities}")
        unknown = sorted({*stem_dropout_probabilities, *mono_dropout_probabilities} - set(stems))
        if unknown:
            raise ValueError(f"drop-out probabilities name stems the dataset does not have: {unknown}; its stems are {list(stems)}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0 (it seeds numpy's SeedSequence), got {seed}")
        if mixup_probabilities and not mix_across_tracks:
            warnings.warn("mixup layers chunks of remixed stems and is not applied to aligned chunks: set "
                          "training.remix_stems: true (--remix; mix_across_tracks=True) to use it", stacklevel=2)
        self.tracks = list(tracks)
        self.stems = list(stems)
        self.chunk_size = int(chunk_size)
        self.channels = channels
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0
        self.mix_across_tracks = mix_across_tracks
        self.gain_range = None if gain_range is None else (float(gain_range[0]), float(gain_range[1]))
        self.channel_swap_probability = channel_swap_probability
        self.polarity_flip_probability = polarity_flip_probability
        self.min_mean_abs = min_mean_abs
        self.max_tries = int(max_tries)
        self.mixup_probabilities = tuple(mixup_probabilities)
        self.stem_dropout_probabilities = {stem: float(p) for stem, p in stem_dropout_probabilities.items()}
        self.mono_dropout_probabilities = {stem: float(p) for stem, p in mono_dropout_probabilities.items()}

    def set_epoch(self, epoch: int) -> None:
        """Draw the items of `epoch` from now on (call before iterating: workers copy the dataset when an iterator starts)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(mixture (channels, chunk_size), stems (len(stems), channels, chunk_size)), both float32."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items")
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        if self.mix_across_tracks:
            chunks = [self._remixed_stem(stem, rng) for stem in self.stems]
        else:
            chunks = [self._augment(chunk, rng) for chunk in self._aligned_chunks(rng)]
        # a stream of its own, so that the drop-outs leave every other draw (and older runs' items) as they were
        chunks = self._drop_out(chunks, np.random.default_rng([self.seed, self.epoch, int(index), 1]))
        stems = torch.from_numpy(np.stack(chunks))
        # summed by torch so that mixture == stems.sum(0) holds bit for bit
        return stems.sum(dim=0), stems

    def _draw_position(self, rng: np.random.Generator) -> Tuple[Track, int]:
        track = self.tracks[rng.integers(len(self.tracks))]
        return track, int(rng.integers(max(1, track.frames - self.chunk_size + 1)))

    def _audible(self, chunk: np.ndarray) -> bool:
        return self.min_mean_abs <= 0 or float(np.abs(chunk).mean()) >= self.min_mean_abs

    def _audible_chunk(self, stem: str, rng: np.random.Generator) -> np.ndarray:
        for _ in range(self.max_tries):
            track, start = self._draw_position(rng)
            chunk = read_chunk(track.stems[stem], start, self.chunk_size, self.channels)
            if self._audible(chunk):
                break
        return chunk

    def _remixed_stem(self, stem: str, rng: np.random.Generator) -> np.ndarray:
        layers = [self._augment(self._audible_chunk(stem, rng), rng)]
        for probability in self.mixup_probabilities:
            if rng.random() < probability:
                layers.append(self._augment(self._audible_chunk(stem, rng), rng))
        # averaged, not summed, so mixup varies the texture and not the level
        return layers[0] if len(layers) == 1 else np.mean(layers, axis=0, dtype=np.float32)

    def _aligned_chunks(self, rng: np.random.Generator) -> List[np.ndarray]:
        for _ in range(self.max_tries):
            track, start = self._draw_position(rng)
            chunks = [read_chunk(track.stems[stem], start, self.chunk_size, self.channels) for stem in self.stems]
            if all(map(self._audible, chunks)):
                break
        return chunks

    def _augment(self, chunk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # every draw happens whether or not it is used, so switching one augmentation off leaves the others' draws alone
        gain_draw = rng.random()
        gain = self.gain_range[0] + gain_draw * (self.gain_range[1] - self.gain_range[0]) if self.gain_range else 1.0
        swap = rng.random() < self.channel_swap_probability
        flip = rng.random() < self.polarity_flip_probability
        chunk = chunk * np.float32(gain * (-1.0 if flip else 1.0))
        return chunk[::-1].copy() if swap and chunk.shape[0] == 2 else chunk

    def _drop_out(self, chunks: List[np.ndarray], rng: np.random.Generator) -> List[np.ndarray]:
        dropped = []
        for stem, chunk in zip(self.stems, chunks):
            silent, mono, channel = rng.random(), rng.random(), int(rng.integers(2))
            if silent < self.stem_dropout_probabilities.get(stem, 0.0):
                chunk = np.zeros_like(chunk)
            elif mono < self.mono_dropout_probabilities.get(stem, 0.0) and chunk.shape[0] == 2:
                chunk = chunk.copy()
                chunk[channel] = 0
            dropped.append(chunk)
        return dropped


class FullTrackDataset(torch.utils.data.Dataset):
    """Whole tracks: item -> (name, mixture (channels, frames), stems (len(stems), channels, frames)).

    The mixture is mixture.wav when the track has one, else the sum of the `mixture_of` stems (default: `stems`;
    find them with find_tracks(..., mixture_of=...)). channels: None keeps each track's own channel count.
    """

    def __init__(
        self, tracks: Sequence[Track], stems: Sequence[str], channels: Optional[int] = 2, mixture_of: Optional[Sequence[str]] = None
    ):
        _check_stems(tracks, stems)
        self.tracks = list(tracks)
        self.stems = list(stems)
        self.channels = channels
        self.mixture_of = list(mixture_of or stems)
        _check_stems([track for track in self.tracks if track.mixture is None], self.mixture_of)

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> Tuple[str, torch.Tensor, torch.Tensor]:
        """(name, mixture (channels, frames), stems (len(stems), channels, frames)), float32, read now."""
        track = self.tracks[index]
        channels = self.channels or track.channels
        read = {stem: read_chunk(track.stems[stem], 0, track.frames, channels) for stem in self.stems}
        stems = torch.from_numpy(np.stack(list(read.values())))
        if track.mixture is not None:
            mixture = torch.from_numpy(read_chunk(track.mixture, 0, track.frames, channels))
        elif self.mixture_of == self.stems:
            mixture = stems.sum(dim=0)
        else:
            mixture = torch.from_numpy(np.stack([
                read[stem] if stem in read else read_chunk(track.stems[stem], 0, track.frames, channels) for stem in self.mixture_of
            ])).sum(dim=0)
        return track.name, mixture, stems


# MSST augmentations that dataset_from_config maps (the others need audiomentations or pedalboard), and our
# own per-stem drop-outs, which may appear in `all` or in a stem's section
_MAPPED = {"channel_shuffle", "random_polarity"}
_DROP_OUTS = {"stem_dropout", "mono_dropout"}


def dataset_from_config(
    config: Dict[str, Any],
    root: Union[str, Path],
    *,
    seed: int = 0,
    length: Optional[int] = None,
    mix_across_tracks: Optional[bool] = None,
) -> RandomChunkDataset:
    """A RandomChunkDataset over the tracks in `root`, as an MSST config describes it.

    Reads audio.chunk_size, audio.sample_rate (44100), audio.num_channels (2), audio.min_mean_abs (0),
    training.instruments, training.num_steps (1000) x training.batch_size (1) as the default length,
    training.remix_stems (false; `mix_across_tracks` overrides it), and the augmentations section:
      no section, or enable: false, means no augmentation at all, and each augmentation is off unless the
        section switches it on (MSST's rules);
      loudness (default false), loudness_min (0.5), loudness_max (1.5): the gain range;
      all.channel_shuffle, all.random_polarity (default 0): the swap and flip probabilities;
      mixup (default false), mixup_probs (0.2, 0.02): extra layers of the same stem;
      stem_dropout, mono_dropout (default 0), in `all` or in a stem's own section (which wins): the
        probabilities that the stem is silent, or one of its channels.
    Other augmentations (pitch shift, EQ, reverb, mp3, ...), and anything else in per-stem sections, are not
    applied; a warning names those the config switches on.
    """
    audio, training = config.get("audio") or {}, config.get("training") or {}
    stems = list(training.get("instruments") or [])
    if not stems:
        raise ValueError("the config names no stems to train on: set training.instruments")
    if "chunk_size" not in audio:
        raise ValueError("the config has no audio.chunk_size (samples per training chunk)")
    augmentations = config.get("augmentations")
    # COMPAT: MSST augments only when the config has an augmentations section with `enable: true`, and then
    # only what the section names. A section without `enable` counts as enabled here (MSST would fail on it).
    enabled = augmentations is not None and bool(augmentations.get("enable", True))
    augmentations = augmentations or {}
    every_stem = augmentations.get("all") or {}
    gain_range = None
    if enabled and augmentations.get("loudness", False):
        gain_range = (float(augmentations.get("loudness_min", 0.5)), float(augmentations.get("loudness_max", 1.5)))
    mixup = tuple(float(p) for p in augmentations.get("mixup_probs", (0.2, 0.02))) if enabled and augmentations.get("mixup") else ()
    drop_outs = {name: {} for name in _DROP_OUTS}
    if enabled:
        _warn_unmapped(augmentations, stems)
        for name in _DROP_OUTS:
            for stem in stems:
                section = augmentations.get(stem) if isinstance(augmentations.get(stem), dict) else {}
                probability = float(section.get(name, every_stem.get(name, 0.0)))
                if probability > 0:
                    drop_outs[name][stem] = probability
    return RandomChunkDataset(
        find_tracks(root, stems, sample_rate=int(audio.get("sample_rate") or 44100)),
        stems,
        int(audio["chunk_size"]),
        channels=int(audio.get("num_channels") or 2),
        length=length if length is not None else int(training.get("num_steps") or 1000) * int(training.get("batch_size") or 1),
        seed=seed,
        gain_range=gain_range,
        channel_swap_probability=float(every_stem.get("channel_shuffle", 0.0)) if enabled else 0.0,
        polarity_flip_probability=float(every_stem.get("random_polarity", 0.0)) if enabled else 0.0,
        min_mean_abs=float(audio.get("min_mean_abs") or 0.0),
        mixup_probabilities=mixup,
        stem_dropout_probabilities=drop_outs["stem_dropout"],
        mono_dropout_probabilities=drop_outs["mono_dropout"],
        mix_across_tracks=bool(training.get("remix_stems", False)) if mix_across_tracks is None else mix_across_tracks,
    )


def _warn_unmapped(augmentations: Dict[str, Any], stems: Sequence[str]) -> None:
    sections = {"all": augmentations.get("all") or {}}
    sections.update((stem, augmentations[stem]) for stem in stems if isinstance(augmentations.get(stem), dict))
    # an augmentation is on when its probability is positive; its parameters are named *_min / *_max
    unmapped = [
        f"{name}.{key}" for name, section in sections.items() for key, value in section.items()
        if not (name == "all" and key in _MAPPED) and key not in _DROP_OUTS and "_min" not in key and "_max" not in key
        and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    ]
    if unmapped:
        warnings.warn(f"augmentations not applied by bs_roformer's dataset: {', '.join(unmapped)}", stacklevel=3)
