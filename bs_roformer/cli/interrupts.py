"""Ctrl-C and SIGTERM end a command the same way: cleanup runs, one line is printed, exit 128 + signal."""

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator


class Interrupted(KeyboardInterrupt):
    """A signal that ends the run; a KeyboardInterrupt, so that every cleanup that handles Ctrl-C runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (as sent by `timeout`, `kill`, job schedulers) raises Interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    pid = os.getpid()

    def raise_interrupted(signum, frame):
        if os.getpid() != pid:  # a forked worker (DataLoader) ends as it would have without this handler
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, raise_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interruptible(command: Callable[[], int], program: str = "bs-roformer") -> int:
    """Run a command; on Ctrl-C or SIGTERM print one line and return 130 (SIGINT) or 143 (SIGTERM)."""
    try:
        with terminate_as_interrupt():
            return command()
    except KeyboardInterrupt as interrupt:
        signum = getattr(interrupt, "signum", signal.SIGINT)
        print(f"{program}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + int(signum)
