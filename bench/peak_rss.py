"""Peak resident memory of the current process.

Linux keeps a process's ru_maxrss across exec, so a child started from a large parent would report the
parent's size; VmHWM in /proc/self/status starts afresh with the new program.
"""

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux, bytes on macOS
