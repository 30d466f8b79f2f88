"""A run over many files: which inputs, where each one's stems go, all decided before any separation.

Folders are searched recursively (hidden files and the run's own output folder left out), and each file
keeps its folder relative to the folder given, as Music-Source-Separation-Training's --input_folder does:
albums/a/song.wav -> OUT/a/song/{stem}.wav. Inputs that would still share an output path (a/song.wav and
b/song.wav given as files, song.wav next to song.flac) are told apart by their track name (song, song-2);
a file given twice is separated once; no output path is written twice in a run, and none is an input.
"""

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .audio_io import AUDIO_EXTENSIONS, output_paths
from .errors import SeparationError


@dataclass(frozen=True)
class Input:
    path: Path
    folder: Path  # the file's folder relative to the folder it was found in ("." for a file given itself)


@dataclass(frozen=True)
class Job:
    """One input and the file each of its stems goes to."""

    source: Path
    output_dir: Path  # the run's output folder / the input's relative folder
    track: str  # the template's {track}
    targets: Dict[str, Path]

    def existing(self) -> List[Path]:
        return [path for path in self.targets.values() if path.exists()]


def find_inputs(paths: Sequence[str], exclude: Optional[Path] = None) -> Tuple[List[Input], List[str]]:
    """Audio files from files and folders (not under `exclude`), and an error line for each path that does
    not exist."""
    excluded = exclude.resolve() if exclude is not None else None
    inputs, errors = [], []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found = [
                Input(file, file.relative_to(path).parent)
                for file in sorted(path.rglob("*"))
                if file.is_file() and file.suffix.lower() in AUDIO_EXTENSIONS
                and not any(part.startswith(".") for part in file.relative_to(path).parts)
                and not (excluded is not None and excluded in file.resolve().parents)
            ]
            if not found:
                errors.append(f"{path}: no audio files in this folder (looked for {', '.join(AUDIO_EXTENSIONS)})")
            inputs += found
        elif path.exists():
            inputs.append(Input(path, Path(".")))
        else:
            errors.append(f"{path}: no such file or folder")
    return inputs, errors


def plan(inputs: Sequence[Input], output_dir: Path, template: str, stems: List[str], file_format: str) -> Tuple[List[Job], List[str]]:
    """One job per distinct input with output paths no other job and no input has, and notes on what was
    told apart or dropped. SeparationError if the template gives every input the same paths."""
    jobs: List[Job] = []
    notes: List[str] = []
    claimed: Dict[Path, Job] = {}
    sources: Dict[Path, Path] = {}
    for item in inputs:
        resolved = item.path.resolve()
        if resolved in sources:
            notes.append(f"{item.path} is given twice (also as {sources[resolved]}): separated once")
            continue
        sources[resolved] = item.path
        folder = Path(output_dir) / item.folder
        job = _job(item.path, folder, item.path.stem, template, stems, file_format)
        clash = next((claimed[path] for path in job.targets.values() if path in claimed), None)
        if clash is not None:
            job = _told_apart(job, set(claimed), template, stems, file_format)
            notes.append(f"{item.path} and {clash.source} would write the same files: {item.path} goes to track "
                         f"{job.track!r} ({next(iter(job.targets.values()))}, ...)")
        jobs.append(job)
        claimed.update({path: job for path in job.targets.values()})
    inputs_hit = [str(path) for path in claimed if path.resolve() in sources]
    if inputs_hit:
        raise SeparationError(f"the outputs would replace input files ({', '.join(inputs_hit)}); choose another "
                              "--output folder or --filename-template")
    return jobs, notes


def _job(source: Path, folder: Path, track: str, template: str, stems: List[str], file_format: str) -> Job:
    return Job(source, folder, track, output_paths(folder, template, track, stems, file_format))


def _told_apart(job: Job, claimed: Set[Path], template: str, stems: List[str], file_format: str) -> Job:
    for number in itertools.count(2):
        renamed = _job(job.source, job.output_dir, f"{job.track}-{number}", template, stems, file_format)
        if renamed.targets == job.targets:
            raise SeparationError(f"the output template {template!r} writes every input to the same files; "
                                  "include {track} in it")
        if not claimed & set(renamed.targets.values()):
            return renamed
