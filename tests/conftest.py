import torch

from helpers import LARGEST_DIFFERENCES

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_terminal_summary(terminalreporter):
    if LARGEST_DIFFERENCES:
        terminalreporter.section("largest differences from the references (relative to output scale)")
        for name, difference in sorted(LARGEST_DIFFERENCES.items()):
            terminalreporter.write_line(f"{difference:9.2e}  {name}")
