"""Atomic file writes: a file, or a set of files, appears complete or not at all.

Files are written under temporary names in a hidden folder next to their destinations (same filesystem, so
renames are atomic), flushed to disk, and renamed into place together. What a set of files guarantees:
- an error or interruption while writing leaves no trace (the hidden folders are deleted, and so are the
  folders created for the outputs if they stay empty);
- the renames run with Ctrl-C and SIGTERM held back until they are done, and an error during them (a
  full disk, a permission) rolls them back, restoring files that were replaced;
- only a hard kill (SIGKILL) or a power loss during the renames themselves, which take microseconds, can
  leave a mixed set.
"""

import contextlib
import errno
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Iterator, List

STAGING_PREFIX = ".bs-roformer-"
STAGING_SUFFIX = ".partial"


class FileSet:
    """Destinations written under `temporary[destination]` and published together on a clean exit.

        with FileSet([a, b]) as files:
            write(files.temporary[a]); write(files.temporary[b])
        # a and b both exist now; after an exception, neither changed
    """

    def __init__(self, destinations: Iterable[Path]):
        self.destinations = [Path(path) for path in destinations]
        if len(set(self.destinations)) < len(self.destinations):
            raise ValueError(f"a file set names one destination twice: {self.destinations}")
        self.temporary: Dict[Path, Path] = {}
        self._staging: Dict[Path, Path] = {}  # destination folder -> its hidden staging folder
        self._created: List[Path] = []  # output folders this set made, removed again if left empty

    def __enter__(self) -> "FileSet":
        try:
            for destination in self.destinations:
                if destination.is_dir():
                    raise IsADirectoryError(errno.EISDIR, "a folder is in the way of an output file", str(destination))
                folder = destination.parent
                if folder not in self._staging:
                    self._make_folder(folder)
                    self._staging[folder] = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, suffix=STAGING_SUFFIX, dir=folder))
                self.temporary[destination] = self._staging[folder] / destination.name
        except BaseException:
            self.discard()
            raise
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self.publish()
        else:
            self.discard()

    def publish(self) -> None:
        """Flush every temporary file and rename them all into place (rolled back on an error)."""
        try:
            for path in self.temporary.values():
                _fsync(path)
            with _signals_held():
                self._rename_all()
            for folder in self._staging:
                _fsync(folder)
        finally:
            self.discard()

    def discard(self) -> None:
        """Delete the temporary files, and the output folders this set created if they are empty."""
        for staging in self._staging.values():
            shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds if nothing else was put there

    def _make_folder(self, folder: Path) -> None:
        missing = [parent for parent in [folder, *folder.parents] if not parent.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        self._created += reversed(missing)

    def _rename_all(self) -> None:
        done = []  # (destination, the replaced file's backup or None)
        destination = None
        try:
            for destination, temporary in self.temporary.items():
                backup = None
                if destination.exists():
                    backup = temporary.with_name(f"{STAGING_PREFIX}previous-{destination.name}")
                    os.replace(destination, backup)
                done.append((destination, backup))
                os.replace(temporary, destination)
        except BaseException as error:
            for published, backup in reversed(done):
                with contextlib.suppress(OSError):
                    if backup is not None:
                        os.replace(backup, published)
                    elif published.exists():
                        published.unlink()
            if isinstance(error, OSError) and error.errno is not None:  # name the output, not a hidden temporary
                raise OSError(error.errno, error.strerror, str(destination)) from None
            raise


@contextlib.contextmanager
def atomic_path(destination: Path) -> Iterator[Path]:
    """A temporary path to write `destination` to; renamed into place if the block ends without an error."""
    destination = Path(destination)
    with FileSet([destination]) as files:
        yield files.temporary[destination]


def _fsync(path: Path) -> None:
    """Flush a file (or, on POSIX, a folder's entries) to disk, so a rename never publishes lost data."""
    if path.is_dir() and os.name != "posix":
        return
    descriptor = os.open(path, os.O_RDONLY if path.is_dir() else os.O_RDWR)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM (delivered when the block ends), where the platform allows it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
