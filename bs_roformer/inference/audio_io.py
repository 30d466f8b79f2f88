"""Reading and writing audio files with soundfile, block by block.

Writes are atomic per track (see bs_roformer/atomic.py): every stem goes to a temporary file in a hidden
folder next to its destination, and all are renamed together only when every stem is complete, so an
interrupted run leaves no half-written stems and never a mix of old and new ones.
"""

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import soundfile as sf
import torch

from ..atomic import FileSet
from .errors import AudioFileError, SeparationError
from .streams import DEFAULT_BLOCK

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
# subtypes each container can store; the first is the default
SUBTYPES = {"wav": ("FLOAT", "PCM_16", "PCM_24", "PCM_32"), "flac": ("PCM_24", "PCM_16")}
# the audio files bs_roformer reads, in order of preference where one name has several
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".au", ".w64", ".caf")

# libsndfile's log of a WAV whose data chunk runs past the end of the file: "data : 176400 (should be 88178)"
_SHORT_DATA_CHUNK = re.compile(r"^data : (\d+) \(should be \d+\)", re.MULTILINE)
_BLOCK_ALIGN = re.compile(r"Block Align\s*:\s*(\d+)")
SCAN_BLOCK = 4096  # a truncated FLAC reads up to the failing block: small blocks keep most of it


def check_channels(channels: int, what: str) -> None:
    if channels not in (1, 2):
        raise AudioFileError(f"{what} has {channels} channels; only mono and stereo can be separated (downmix it first)")


@dataclass
class NonFinite:
    """Counts the NaN and infinite samples of a (channels, t) stream, and where the first one is."""

    count: int = 0
    first: Optional[int] = None  # frame index
    frames: int = 0

    def update(self, block: torch.Tensor) -> None:
        bad = ~torch.isfinite(block)
        if self.first is None and bad.any():
            self.first = self.frames + int(bad.any(dim=0).nonzero()[0])
        self.count += int(bad.sum())
        self.frames += block.shape[-1]

    def message(self, what: str, sample_rate: int) -> str:
        return (
            f"{what} has {self.count} non-finite samples (NaN or infinity), the first at frame {self.first} "
            f"({self.first / sample_rate:.3f} s); repair it, or pass --nan-to-zero (nan_to_zero=True) to replace "
            "them with silence"
        )


class AudioReader:
    """An audio file read in blocks of (channels, n) float32 tensors; checked when opened.

    `scan()` reads it once more and refuses non-finite samples (or zeroes them, with nan_to_zero) and
    finds truncated files (read up to where the data ends, with a warning).
    """

    def __init__(self, path, block: int = DEFAULT_BLOCK):
        self.path = Path(path)
        self.block = block
        self.nan_to_zero = False
        if not self.path.exists():
            raise AudioFileError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise AudioFileError(f"{self.path}: not a file")
        try:
            with sf.SoundFile(str(self.path)) as file:
                self.sample_rate, self.channels, self.frames = file.samplerate, file.channels, file.frames
                log = file.extra_info
        except (sf.LibsndfileError, RuntimeError) as error:
            reason = str(error).split(":")[-1].strip() or "unknown format"
            raise AudioFileError(f"{self.path}: cannot read audio ({reason}); supported: WAV, FLAC, MP3, OGG, AIFF") from None
        # libsndfile stops a WAV at the end of the file; the header says how long it was meant to be
        short, align = _SHORT_DATA_CHUNK.search(log), _BLOCK_ALIGN.search(log)
        self.header_frames = int(short[1]) // int(align[1]) if short and align and int(align[1]) else self.frames
        if self.frames <= 0:
            raise AudioFileError(f"{self.path}: the file holds no audio samples")
        check_channels(self.channels, str(self.path))

    def scan(self, nan_to_zero: bool = False) -> None:
        """Read the whole file once: refuse non-finite samples (or zero them) and warn of a truncated file."""
        found = NonFinite()
        try:
            for block in self._decoded(self.frames, SCAN_BLOCK):
                found.update(block)
        except AudioFileError:
            if found.frames == 0:
                raise
        if found.count and not nan_to_zero:
            raise AudioFileError(found.message(str(self.path), self.sample_rate))
        if found.count:
            warnings.warn(f"{self.path}: {found.count} non-finite samples (NaN or infinity) replaced by silence")
        self.nan_to_zero = nan_to_zero
        expected = max(self.header_frames, self.frames)
        if found.frames < expected:
            warnings.warn(
                f"{self.path}: truncated: its header promises {expected} frames but only {found.frames} can be read "
                f"({found.frames / self.sample_rate:.2f} of {expected / self.sample_rate:.2f} s); separating those"
            )
        self.frames = found.frames

    def blocks(self) -> Iterator[torch.Tensor]:
        """A fresh pass over the file."""
        for block in self._decoded(self.frames):
            yield torch.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0) if self.nan_to_zero else block

    def _decoded(self, frames: int, blocksize: Optional[int] = None) -> Iterator[torch.Tensor]:
        done = 0
        try:
            with sf.SoundFile(str(self.path)) as file:
                for block in file.blocks(blocksize=blocksize or self.block, frames=frames, dtype="float32", always_2d=True):
                    done += block.shape[0]
                    yield torch.from_numpy(block.T.copy())
        except sf.LibsndfileError as error:
            raise AudioFileError(f"{self.path}: cannot decode the audio after frame {done} ({error}); the file is "
                                 "truncated or corrupt") from None

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


def output_paths(output_dir: Path, template: str, track: str, stems: List[str], file_format: str) -> Dict[str, Path]:
    """Destination of each stem: template fields {track} (or {file_name}), {stem} (or {instr}), {ext}."""
    if "{ext}" not in template:
        template += ".{ext}"
    paths = {}
    for stem in stems:
        relative = template.format(track=track, file_name=track, stem=stem, instr=stem, ext=file_format)
        paths[stem] = output_dir / relative
    if len(set(paths.values())) < len(paths):
        raise SeparationError(f"the output template {template!r} gives several stems the same file name; include {{stem}}")
    return paths


def check_format(file_format: str, subtype: Optional[str]) -> str:
    """The subtype to write, validated for the container."""
    if file_format not in SUBTYPES:
        raise SeparationError(f"output format {file_format!r} is not supported; choose {' or '.join(SUBTYPES)}")
    subtype = subtype or SUBTYPES[file_format][0]
    if subtype not in SUBTYPES[file_format]:
        raise SeparationError(f"{file_format.upper()} cannot store {subtype}; choose one of {', '.join(SUBTYPES[file_format])}")
    return subtype


class StemWriters:
    """One output file per stem, written block by block and published together on a clean exit.

    Any failure (also while opening the third of four files, or Ctrl-C) closes and deletes them all. A full
    disk or a permission problem is an OSError naming the stem's destination and the reason.
    """

    def __init__(self, targets: Dict[str, Path], sample_rate: int, channels: int, file_format: str, subtype: Optional[str]):
        self.targets = targets
        self.subtype = check_format(file_format, subtype)
        self.format = file_format.upper()
        self.sample_rate, self.channels = sample_rate, channels
        self.files: List[sf.SoundFile] = []
        self.sinks: List[_Sink] = []
        self.clipped = 0
        self._open = contextlib.ExitStack()

    def __enter__(self) -> "StemWriters":
        with contextlib.ExitStack() as stack:
            staged = stack.enter_context(FileSet(self.targets.values()))  # published last, after every close
            for target in self.targets.values():
                sink, file = stack.enter_context(self._sound_file(staged.temporary[target], target))
                self.sinks.append(sink)
                self.files.append(file)
            self._open = stack.pop_all()
        return self

    def write(self, block: torch.Tensor) -> None:
        """(stems, channels, n) -> append to every stem's file."""
        if not torch.isfinite(block).all():
            raise SeparationError("the separation produced non-finite samples (overflow in reduced precision? "
                                  "try --precision fp32)")
        if self.subtype != "FLOAT":
            self.clipped += int((block.abs() > 1).sum())
        for file, sink, stem in zip(self.files, self.sinks, block):
            with sink.reporting():
                file.write(stem.T.contiguous().numpy())

    def __exit__(self, error_type, error, traceback) -> None:
        self._open.__exit__(error_type, error, traceback)
        if error_type is None and self.clipped:
            warnings.warn(f"{self.clipped} samples beyond full scale were clipped in {self.subtype} output; "
                          "write FLOAT WAV to keep them")

    @contextlib.contextmanager
    def _sound_file(self, path: Path, target: Path):
        # through a Python file, so that the operating system's reason for a failed write (ENOSPC, EACCES)
        # survives libsndfile, which reports every one as "System error."
        try:
            sink = _Sink(open(path, "w+b", buffering=0), target)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(target)) from None
        try:
            with sink.reporting():
                file = sf.SoundFile(sink, "w", self.sample_rate, self.channels, self.subtype, format=self.format)
        except BaseException:
            sink.raw.close()
            raise
        try:
            yield sink, file
        except BaseException:
            with contextlib.suppress(Exception):
                file.close()
            sink.raw.close()
            raise
        with sink.reporting():
            file.close()
        sink.raw.close()


class _Sink:
    """A raw file for libsndfile's callbacks that keeps the first exception instead of losing it in C."""

    def __init__(self, raw, target: Path):
        self.raw, self.target = raw, target
        self.error: Optional[BaseException] = None

    def _guarded(self, action, *args, failed=0):
        try:
            return action(*args)
        except BaseException as error:  # also Ctrl-C: an exception cannot cross libsndfile's C frames
            self.error = self.error or error
            return failed

    def write(self, data) -> int:
        return self._guarded(self.raw.write, data)

    def read(self, size: int) -> bytes:
        return self._guarded(self.raw.read, size, failed=b"")

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._guarded(self.raw.seek, offset, whence)

    def tell(self) -> int:
        return self._guarded(self.raw.tell)

    @contextlib.contextmanager
    def reporting(self):
        """Raise what the callbacks kept (an OSError naming the destination) instead of soundfile's error."""
        try:
            yield
        except (sf.LibsndfileError, AssertionError) as error:  # soundfile asserts that every frame was written
            self._raise_kept()
            raise OSError(f"{self.target}: cannot write audio ({error or 'short write'})") from None
        self._raise_kept()

    def _raise_kept(self) -> None:
        error, self.error = self.error, None
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(self.target)) from None
        if error is not None:
            raise error
