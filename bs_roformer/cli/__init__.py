"""The `bs-roformer` command: separate (the default), models, train, evaluate, export."""

import sys
from typing import List, Optional

from . import evaluate, export, models, separate, train
from .interrupts import run_interruptible

COMMANDS = {"separate": separate, "models": models, "train": train, "evaluate": evaluate, "export": export}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return run_interruptible(lambda: COMMANDS[argv[0]].main(argv[1:]))
    return run_interruptible(lambda: separate.main(argv))


def summaries(leave_out: str = "separate") -> List[str]:
    """`name: what it does` of every command but `leave_out`, from the first line of its module docstring."""
    firsts = {name: (module.__doc__ or name).strip().splitlines()[0] for name, module in COMMANDS.items()}
    return [f"{name}: {first.split(': ', 1)[-1].rstrip('.')}" for name, first in firsts.items() if name != leave_out]
