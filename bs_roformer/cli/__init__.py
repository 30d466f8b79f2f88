"""The `bs-roformer` command: separate (the default), models, train, evaluate, export."""

import sys
from typing import List, Optional

from . import evaluate, export, models, separate, train

COMMANDS = {"separate": separate, "models": models, "train": train, "evaluate": evaluate, "export": export}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]].main(argv[1:])
    return separate.main(argv)
