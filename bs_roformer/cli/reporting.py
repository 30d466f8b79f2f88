"""How the commands report what goes wrong: one line each, and an exit code.

Ordinary errors are those the library raises for bad input or a bad environment (ValueError for wrong
data, configs and checkpoints; OSError for missing files, full disks, no network): their messages say what
to do, so a traceback would only hide them. Anything else (TypeError, RuntimeError, ...) is a bug and keeps
its traceback.
"""

import signal
import sys
import warnings
from typing import Callable

from ..training.distributed import OtherRankFailed

ORDINARY_ERRORS = (OSError, ValueError, OtherRankFailed)
FAILED = 1


def run_reporting(program: str, action: Callable[[], int], interrupted: str = "interrupted") -> int:
    """`action()`'s exit code; an ordinary error or Ctrl-C as one line on stderr (exit 1, or 130 for Ctrl-C), warnings one line each."""
    with warnings.catch_warnings():
        warnings.showwarning = lambda message, category, *_, **__: print(f"{program}: warning: {message}", file=sys.stderr)
        try:
            return action()
        except ORDINARY_ERRORS as error:
            print(f"{program}: error: {error}", file=sys.stderr)
            return FAILED
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM where it is raised as one (with its signum)
            print(f"{program}: {interrupted}", file=sys.stderr)
            return 128 + int(getattr(interrupt, "signum", signal.SIGINT))
