"""The `bs-roformer` command: separate (the default), models."""

import sys
from typing import List, Optional

from . import models, separate

COMMANDS = {"separate": separate, "models": models}


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]].main(argv[1:])
    return separate.main(argv)
