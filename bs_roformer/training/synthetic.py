"""A small synthetic multi-stem dataset in the MUSDB18-HQ layout, for tests, examples and benchmarks.

Each stem has its own spectral and temporal signature, so separating them is learnable:
bass: low sawtooth notes; drums: kicks and noise-burst hats on a beat grid; vocals: a vibrato voice with
formant-like resonances and pauses; other: sustained mid-range chords.
"""

from pathlib import Path
from typing import Sequence, Union

import numpy as np
import soundfile

STEMS = ("vocals", "drums", "bass", "other")


def _notes(rng: np.random.Generator, seconds: float, note_seconds: float, low_midi: int, high_midi: int):
    """Consecutive (start seconds, duration, frequency) notes."""
    count = int(np.ceil(seconds / note_seconds))
    midi = rng.integers(low_midi, high_midi, count)
    return [(k * note_seconds, note_seconds, 440.0 * 2 ** ((m - 69) / 12)) for k, m in enumerate(midi)]


def _envelope(t: np.ndarray, attack: float, decay: float) -> np.ndarray:
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def _bass(rng, t, sample_rate):
    out = np.zeros_like(t)
    for start, duration, frequency in _notes(rng, t[-1] + 1 / sample_rate, 0.5, 28, 52):
        part = (t >= start) & (t < start + duration)
        local = t[part] - start
        saw = 2 * ((frequency * local) % 1.0) - 1
        out[part] = 0.5 * saw * _envelope(local, 0.01, 0.4)
    return out


def _drums(rng, t, sample_rate):
    out = np.zeros_like(t)
    beat = 0.25 * rng.uniform(0.9, 1.1)
    for k in range(int(t[-1] / beat) + 1):
        start = k * beat
        part = (t >= start) & (t < start + beat)
        local = t[part] - start
        if k % 4 == 0:  # kick: a falling sine
            out[part] += 0.9 * np.sin(2 * np.pi * (50 + 100 * np.exp(-local * 30)) * local) * np.exp(-local * 12)
        elif rng.random() < 0.8:  # hat: a short noise burst
            out[part] += 0.3 * rng.standard_normal(part.sum()) * np.exp(-local * 60)
    return out


def _vocals(rng, t, sample_rate):
    out = np.zeros_like(t)
    for start, duration, frequency in _notes(rng, t[-1] + 1 / sample_rate, 0.6, 55, 76):
        if rng.random() < 0.25:
            continue  # a pause
        part = (t >= start) & (t < start + duration * 0.9)
        local = t[part] - start
        phase = 2 * np.pi * frequency * (local + 0.003 * np.sin(2 * np.pi * 5.5 * local) / 5.5)
        # harmonics weighted by two formant-like resonances
        voice = sum(
            np.sin(h * phase) * (np.exp(-((h * frequency - 700) / 300) ** 2) + 0.6 * np.exp(-((h * frequency - 2500) / 500) ** 2) + 0.05)
            for h in range(1, 16)
        )
        out[part] = 0.4 * voice * _envelope(local, 0.05, 2.0)
    return out


def _other(rng, t, sample_rate):
    out = np.zeros_like(t)
    for start, duration, frequency in _notes(rng, t[-1] + 1 / sample_rate, 1.5, 50, 65):
        part = (t >= start) & (t < start + duration)
        local = t[part] - start
        chord = sum(np.sin(2 * np.pi * frequency * ratio * local) + 0.3 * np.sin(6 * np.pi * frequency * ratio * local)
                    for ratio in (1.0, 1.26, 1.5))
        out[part] = 0.15 * chord * _envelope(local, 0.08, 3.0)
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
    """Write root/<track>/<stem>.wav and mixture.wav (their sum), float32 WAV; returns root."""
    unknown = [stem for stem in stems if stem not in GENERATORS]
    if unknown:
        raise ValueError(f"no synthesiser for stems {unknown}; choose from {sorted(GENERATORS)}")
    root = Path(root)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    for index in range(tracks):
        rng = np.random.default_rng([seed, index])
        directory = root / f"track_{index:03d}"
        directory.mkdir(parents=True, exist_ok=True)
        mixture = 0
        for stem in stems:
            mono = GENERATORS[stem](rng, t, sample_rate)
            # a little level and delay difference between channels
            pan = rng.uniform(-0.3, 0.3, channels) if channels == 2 else np.zeros(1)
            audio = np.stack([np.roll(mono, int(rng.integers(0, 8))) * (1 + p) for p in pan], axis=1).astype(np.float32)
            soundfile.write(str(directory / f"{stem}.wav"), audio, sample_rate, subtype="FLOAT")
            mixture = mixture + audio
        soundfile.write(str(directory / "mixture.wav"), mixture, sample_rate, subtype="FLOAT")
    return root
