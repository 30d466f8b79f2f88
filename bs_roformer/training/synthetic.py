"""A small synthetic multi-stem dataset in the MUSDB18-HQ layout, for tests, examples and benchmarks.

Each stem has its own spectral and temporal signature, so separating them is learnable:
bass: low sawtooth notes (40-200 Hz) plucked on a half-second grid; drums: falling-sine kicks, noisy snares
and noise-burst hats on a beat grid; vocals: a vibrato voice whose harmonics are shaped by vowel formants,
with pauses; other: sustained mid-range triads of triangle waves.
"""

from pathlib import Path
from typing import Iterator, Sequence, Tuple, Union

import numpy as np
import soundfile

STEMS = ("vocals", "drums", "bass", "other")
# (first, second) formant of a few vowels, Hz: a, e, i, o, u
VOWELS = ((730, 1090), (530, 1840), (270, 2290), (570, 840), (300, 870))
TABLE = 2048  # samples per wavetable period; harmonics are band-limited to well below its Nyquist


def _hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2 ** ((np.asarray(midi) - 69) / 12)


def _notes(rng: np.random.Generator, frames: int, step: int, low_midi: int, high_midi: int) -> Iterator[Tuple[int, int, float]]:
    """(start, stop, frequency) of consecutive notes `step` samples apart."""
    starts = range(0, frames, step)
    for start, frequency in zip(starts, _hz(rng.integers(low_midi, high_midi, len(starts)))):
        yield start, min(start + step, frames), float(frequency)


def _envelope(length: int, sample_rate: int, attack: float, decay: float) -> np.ndarray:
    t = np.arange(length) / sample_rate
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def _bass(rng, frames, sample_rate):
    out = np.zeros(frames)
    for start, stop, frequency in _notes(rng, frames, sample_rate // 2, 28, 52):  # E1..D#3, 41-185 Hz
        phase = frequency * np.arange(stop - start) / sample_rate % 1.0
        tone = np.sin(2 * np.pi * phase) + 0.3 * (2 * phase - 1)  # mostly fundamental, a little sawtooth edge
        out[start:stop] = tone * _envelope(stop - start, sample_rate, 0.01, 0.35)
    return out


def _drums(rng, frames, sample_rate):
    out = np.zeros(frames)
    step = int(sample_rate * 0.25 * rng.uniform(0.85, 1.15))  # eighth notes at 105-140 bpm
    for k, start in enumerate(range(0, frames, step)):
        stop = min(start + step, frames)
        t = np.arange(stop - start) / sample_rate
        if k % 4 == 0:  # kick: a sine falling from 150 to 50 Hz
            out[start:stop] = 0.9 * np.sin(2 * np.pi * (50 * t + (100 / 30) * (1 - np.exp(-30 * t)))) * np.exp(-12 * t)
        elif k % 4 == 2:  # snare: noise over a 190 Hz body
            out[start:stop] = (0.4 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 190 * t)) * np.exp(-25 * t)
        elif rng.random() < 0.8:  # hat: a short burst of high-passed noise
            noise = rng.standard_normal(len(t) + 1)
            out[start:stop] = 0.25 * np.diff(noise) * np.exp(-70 * t)
    return out


def _vocals(rng, frames, sample_rate):
    out = np.zeros(frames)
    harmonics = np.arange(1, 25)[:, None]
    cycle = 2 * np.pi * np.arange(TABLE) / TABLE
    for start, stop, frequency in _notes(rng, frames, int(0.6 * sample_rate), 55, 76):  # G3..D#5
        if rng.random() < 0.25:
            continue  # a breath
        first, second = VOWELS[rng.integers(len(VOWELS))]
        # harmonics weighted by two formant resonances, the timbre of a sung vowel, over a tilted source
        weights = (np.exp(-((harmonics * frequency - first) / 150) ** 2) + 0.5 * np.exp(-((harmonics * frequency - second) / 250) ** 2)
                   + 0.3 / harmonics) * (harmonics * frequency < 0.45 * sample_rate)
        table = (weights * np.sin(harmonics * cycle)).sum(axis=0)
        length = int((stop - start) * 0.9)
        t = np.arange(length) / sample_rate
        rate = rng.uniform(4.5, 6.5)
        vibrato = 0.02 * np.sin(2 * np.pi * rate * t) / (2 * np.pi * rate)  # +-2 % (a third of a semitone)
        index = (frequency * (t + vibrato) * TABLE).astype(np.int64) % TABLE
        out[start:start + length] = 0.5 * table[index] / np.abs(table).max() * _envelope(length, sample_rate, 0.06, 1.5)
    return out


def _other(rng, frames, sample_rate):
    out = np.zeros(frames)
    for start, stop, frequency in _notes(rng, frames, int(1.5 * sample_rate), 52, 67):  # E3..F#4 roots
        t = np.arange(stop - start) / sample_rate
        third = 2 ** ((3 if rng.random() < 0.5 else 4) / 12)  # minor or major
        chord = sum(2 * np.abs(2 * (frequency * ratio * t % 1.0) - 1) - 1 for ratio in (1.0, third, 1.5))  # triangles
        out[start:stop] = 0.3 * chord * _envelope(stop - start, sample_rate, 0.08, 3.0)
    return out


GENERATORS = {"vocals": _vocals, "drums": _drums, "bass": _bass, "other": _other}


def write_synthetic_dataset(
    root: Union[str, Path],
    *,
    tracks: int = 4,
    seconds: float = 6.0,
    sample_rate: int = 44100,
    stems: Sequence[str] = STEMS,
    channels: int = 2,
    seed: int = 0,
) -> Path:
    """Write root/<track>/<stem>.wav, each (frames, channels), and mixture.wav (their sum) as float32 WAV; returns root."""
    unknown = [stem for stem in stems if stem not in GENERATORS]
    if unknown:
        raise ValueError(f"no synthesiser for stems {unknown}; choose from {sorted(GENERATORS)}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    root = Path(root)
    frames = int(round(seconds * sample_rate))
    for index in range(tracks):
        directory = root / f"track_{index:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        audio = {}
        for stem in stems:
            # a generator per (seed, track, stem): a stem's notes do not depend on which other stems are written
            rng = np.random.default_rng([seed, index, list(GENERATORS).index(stem)])
            mono = GENERATORS[stem](rng, frames, sample_rate)
            mono *= 0.1 * 10 ** (rng.uniform(-4, 4) / 20) / max(np.sqrt(np.mean(mono**2)), 1e-9)  # about -20 dB RMS
            # a little level and delay difference between the channels
            gains = 1 + rng.uniform(-0.3, 0.3, channels) if channels == 2 else np.ones(1)
            delays = rng.integers(0, 8, channels) if channels == 2 else np.zeros(1, dtype=int)
            shifted = [np.concatenate([np.zeros(delay), mono[:frames - delay]]) for delay in delays]
            audio[stem] = np.stack([gain * channel for gain, channel in zip(gains, shifted)], axis=1)
        # one scale for the whole track keeps the mixture the sum of the stems and its peak below full scale
        peak = np.abs(sum(audio.values())).max() if audio else 0.0
        scale = 0.9 / peak if peak > 0.9 else 1.0
        mixture = np.zeros((frames, channels), dtype=np.float32)
        for stem, samples in audio.items():
            samples = (samples * scale).astype(np.float32)
            soundfile.write(str(directory / f"{stem}.wav"), samples, sample_rate, subtype="FLOAT")
            mixture += samples
        soundfile.write(str(directory / "mixture.wav"), mixture, sample_rate, subtype="FLOAT")
    return root
