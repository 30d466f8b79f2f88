"""Multi-stem tracks on disk in the MUSDB18-HQ layout: ROOT/<track>/{mixture,vocals,drums,bass,other}.wav."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import soundfile

from ..inference.audio_io import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class Track:
    """One track's stem files and their common format (read from the headers; no audio is loaded)."""

    name: str
    directory: Path
    stems: Dict[str, Path]
    mixture: Optional[Path]
    sample_rate: int
    frames: int
    channels: int


def find_tracks(
    root: Union[str, Path], stems: Sequence[str], *, sample_rate: Optional[int] = None, require_mixture: bool = False
) -> List[Track]:
    """Every track folder under `root` with a file for each stem (`<stem>.wav`, `.flac`, ...), checked for consistency."""
    root = Path(root)
    layout = f"{root}/<track>/{{{','.join(stems)}}}.wav"
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise FileNotFoundError(f"dataset folder {what}: {root} (expected {layout}, as in MUSDB18-HQ's train/ and test/)")
    # hidden folders are editor and OS litter (.ipynb_checkpoints, .Trash), never tracks
    directories = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not directories:
        raise ValueError(f"{root} has no track folders; expected {layout}")
    return [_read_track(directory, stems, sample_rate, require_mixture) for directory in directories]


def _find_audio(directory: Path, name: str) -> Optional[Path]:
    return next((directory / f"{name}{suffix}" for suffix in AUDIO_EXTENSIONS if (directory / f"{name}{suffix}").is_file()), None)


def _info(path: Path, track: str):
    try:
        info = soundfile.info(str(path))
    except RuntimeError as error:  # soundfile's errors derive from it in every version
        raise ValueError(f"track {track!r}: cannot read {path}: {error}; replace or re-export the file") from None
    if info.frames == 0:
        raise ValueError(f"track {track!r}: {path} holds no audio; replace the file or remove the track folder")
    return info


def _read_track(directory: Path, stems: Sequence[str], sample_rate: Optional[int], require_mixture: bool) -> Track:
    paths = {stem: _find_audio(directory, stem) for stem in stems}
    mixture = _find_audio(directory, "mixture")
    missing = [stem for stem, path in paths.items() if path is None] + (["mixture"] if require_mixture and mixture is None else [])
    if missing:
        present = sorted(path.name for path in directory.iterdir())
        # a folder of folders means the user passed the dataset root instead of its train/ or test/ split
        hint = f"; pass the folder that holds the track folders, e.g. {directory}" if present and all(
            (directory / name).is_dir() for name in present) else "; add the file or remove the track folder"
        raise ValueError(
            f"track {directory.name!r} ({directory}) has no {', '.join(missing)} file (.wav, .flac, ...); it holds {present}{hint}"
        )
    infos = {path: _info(path, directory.name) for path in [*paths.values(), *([mixture] if mixture else [])]}
    first_path, first = next(iter(infos.items()))
    for path, info in infos.items():
        if (info.samplerate, info.frames) != (first.samplerate, first.frames):
            raise ValueError(
                f"track {directory.name!r}: {path.name} has {info.frames} samples at {info.samplerate} Hz, but "
                f"{first_path.name} has {first.frames} at {first.samplerate} Hz; all stems of a track must match "
                f"(trim or resample the files in {directory})"
            )
    if sample_rate is not None and first.samplerate != sample_rate:
        raise ValueError(
            f"track {directory.name!r} ({directory}) is at {first.samplerate} Hz but the config expects {sample_rate} Hz "
            "(audio.sample_rate); resample the dataset or change the config"
        )
    return Track(
        name=directory.name,
        directory=directory,
        stems=paths,
        mixture=mixture,
        sample_rate=first.samplerate,
        frames=first.frames,
        channels=max(info.channels for info in infos.values()),
    )
