"""Reading and writing audio files with soundfile, block by block.

Writes are atomic per track: every stem goes to a hidden temporary file next to its destination, and all are
renamed only when every stem is complete, so an interrupted run leaves no half-written stems.
"""

import os
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import soundfile as sf
import torch

from .streams import DEFAULT_BLOCK

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
# subtypes each container can store; the first is the default
SUBTYPES = {"wav": ("FLOAT", "PCM_16", "PCM_24", "PCM_32"), "flac": ("PCM_24", "PCM_16")}
AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".w64", ".caf"}


class AudioFileError(ValueError):
    """A file that cannot be separated: missing, empty, unreadable, or with too many channels."""


def check_channels(channels: int, what: str) -> None:
    if channels not in (1, 2):
        raise AudioFileError(f"{what} has {channels} channels; only mono and stereo can be separated (downmix it first)")


class AudioReader:
    """An audio file read in blocks of (channels, n) float32 tensors; checked when opened."""

    def __init__(self, path, block: int = DEFAULT_BLOCK):
        self.path = Path(path)
        self.block = block
        if not self.path.exists():
            raise AudioFileError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise AudioFileError(f"{self.path}: not a file")
        try:
            info = sf.info(str(self.path))
        except (sf.LibsndfileError, RuntimeError) as error:
            reason = str(error).split(":")[-1].strip() or "unknown format"
            raise AudioFileError(f"{self.path}: cannot read audio ({reason}); supported: WAV, FLAC, MP3, OGG, AIFF") from None
        self.sample_rate, self.channels, self.frames = info.samplerate, info.channels, info.frames
        if self.frames <= 0:
            raise AudioFileError(f"{self.path}: the file holds no audio samples")
        check_channels(self.channels, str(self.path))

    def blocks(self) -> Iterator[torch.Tensor]:
        """A fresh pass over the file."""
        with sf.SoundFile(str(self.path)) as file:
            for block in file.blocks(blocksize=self.block, dtype="float32", always_2d=True):
                yield torch.from_numpy(block.T.copy())

    def read(self) -> torch.Tensor:
        """The whole file: (channels, frames)."""
        return torch.cat(list(self.blocks()), dim=-1)


def read_frames(path, start: int = 0, frames: int = -1) -> torch.Tensor:
    """(channels, n) float32 samples from `start`: `frames` of them (-1: to the end), fewer where the file ends."""
    try:
        audio, _ = sf.read(str(path), start=start, frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise AudioFileError(f"{path}: cannot read {frames} frames from frame {start} ({error}); replace or re-export the file") from None
    return torch.from_numpy(audio.T)


def read_audio(path) -> "tuple[torch.Tensor, int]":
    """(channels, frames) float32 tensor and sample rate of an audio file."""
    reader = AudioReader(path)
    return reader.read(), reader.sample_rate


def output_paths(output_dir: Path, template: str, track: Path, stems: List[str], file_format: str) -> Dict[str, Path]:
    """Destination of each stem: template fields {track} (or {file_name}), {stem} (or {instr}), {ext}."""
    if "{ext}" not in template:
        template += ".{ext}"
    paths = {}
    for stem in stems:
        relative = template.format(track=track.stem, file_name=track.stem, stem=stem, instr=stem, ext=file_format)
        paths[stem] = output_dir / relative
    if len(set(paths.values())) < len(paths):
        raise ValueError(f"the output template {template!r} gives several stems the same file name; include {{stem}}")
    return paths


def check_format(file_format: str, subtype: Optional[str]) -> str:
    """The subtype to write, validated for the container."""
    if file_format not in SUBTYPES:
        raise ValueError(f"output format {file_format!r} is not supported; choose {' or '.join(SUBTYPES)}")
    subtype = subtype or SUBTYPES[file_format][0]
    if subtype not in SUBTYPES[file_format]:
        raise ValueError(f"{file_format.upper()} cannot store {subtype}; choose one of {', '.join(SUBTYPES[file_format])}")
    return subtype


class StemWriters:
    """One output file per stem, written block by block; renamed into place on a clean exit."""

    def __init__(self, targets: Dict[str, Path], sample_rate: int, channels: int, file_format: str, subtype: Optional[str]):
        self.targets = targets
        self.subtype = check_format(file_format, subtype)
        self.format = file_format.upper()
        self.sample_rate, self.channels = sample_rate, channels
        self.temporary = {stem: path.with_name(f".{path.name}.partial") for stem, path in targets.items()}
        self.files: List[sf.SoundFile] = []
        self.clipped = 0

    def __enter__(self) -> "StemWriters":
        for path in self.temporary.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            self.files.append(sf.SoundFile(str(path), "w", self.sample_rate, self.channels, self.subtype, format=self.format))
        return self

    def write(self, block: torch.Tensor) -> None:
        """(stems, channels, n) -> append to every stem's file."""
        if self.subtype != "FLOAT":
            self.clipped += int((block.abs() > 1).sum())
        for file, stem in zip(self.files, block):
            file.write(stem.T.contiguous().numpy())

    def __exit__(self, error_type, error, traceback) -> None:
        for file in self.files:
            file.close()
        if error_type is not None:
            for path in self.temporary.values():
                path.unlink(missing_ok=True)
            return
        for stem, path in self.temporary.items():
            os.replace(path, self.targets[stem])
        if self.clipped:
            warnings.warn(f"{self.clipped} samples beyond full scale were clipped in {self.subtype} output; "
                          "write FLOAT WAV to keep them")
