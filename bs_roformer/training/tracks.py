"""Multi-stem tracks on disk in the MUSDB18-HQ layout: ROOT/<track>/{mixture,vocals,drums,bass,other}.wav."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import soundfile

from ..inference.audio_io import AUDIO_EXTENSIONS, check_channels


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
    root: Union[str, Path],
    stems: Sequence[str],
    *,
    sample_rate: Optional[int] = None,
    require_mixture: bool = False,
    mixture_of: Sequence[str] = (),
) -> List[Track]:
    """Every track folder under `root` with a file for each stem (`<stem>.wav`, `.flac`, ...), checked for consistency.

    mixture_of: stems that stand in for a missing mixture file (their sum is the mix): a track without one
    must have these too. sample_rate: refuse tracks at another rate.
    """
    root = check_dataset_folder(root, stems)
    layout = _layout(root, stems)
    # hidden folders are editor and OS litter (.ipynb_checkpoints, .Trash), never tracks
    directories = sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))
    if not directories:
        raise ValueError(f"{root} has no track folders; expected {layout}")
    return [_read_track(directory, stems, sample_rate, require_mixture, mixture_of) for directory in directories]


def check_dataset_folder(root: Union[str, Path], stems: Optional[Sequence[str]] = None) -> Path:
    """`root` as a Path, if it is a folder (FileNotFoundError showing the layout expected otherwise)."""
    root = Path(root)
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "not found"
        raise FileNotFoundError(f"dataset folder {what}: {root} (expected {_layout(root, stems)}, as in MUSDB18-HQ's train/ and test/)")
    return root


def _layout(root: Path, stems: Optional[Sequence[str]]) -> str:
    return f"{root}/<track>/{{{','.join(stems)}}}.wav" if stems else f"{root}/<track>/<stem>.wav"


def _find_audio(directory: Path, name: str) -> Optional[Path]:
    return next((directory / f"{name}{suffix}" for suffix in AUDIO_EXTENSIONS if (directory / f"{name}{suffix}").is_file()), None)


def _info(path: Path, track: str):
    try:
        info = soundfile.info(str(path))
    except RuntimeError as error:  # soundfile's errors derive from it in every version
        raise ValueError(f"track {track!r}: cannot read {path}: {error}; replace or re-export the file") from None
    if info.frames == 0:
        raise ValueError(f"track {track!r}: {path} holds no audio; replace the file or remove the track folder")
    check_channels(info.channels, f"track {track!r}: {path}")
    return info


def _read_track(
    directory: Path, stems: Sequence[str], sample_rate: Optional[int], require_mixture: bool, mixture_of: Sequence[str]
) -> Track:
    mixture = _find_audio(directory, "mixture")
    wanted = list(dict.fromkeys([*stems, *(mixture_of if mixture is None else ())]))
    paths = {stem: _find_audio(directory, stem) for stem in wanted}
    absent = [stem for stem, path in paths.items() if path is None]
    # a mixture file would do instead of the stems that only sum up to the mix
    summed = [stem for stem in absent if stem not in stems]
    missing = absent + (["mixture"] if mixture is None and (require_mixture or summed) else [])
    if missing:
        present = sorted(path.name for path in directory.iterdir())
        # a folder of folders means the user passed the dataset root instead of its train/ or test/ split
        hint = f"; pass the folder that holds the track folders, e.g. {directory}" if present and all(
            (directory / name).is_dir() for name in present) else "; add the file or remove the track folder"
        if summed:
            hint += f" (the mix is the mixture file, else the sum of {', '.join(mixture_of)})"
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
