"""`bs-roformer models`: the registry of well-known checkpoints."""

import argparse
from typing import List

from ..inference.registry import DEFAULT_MODEL, REGISTRY, cache_dir


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="bs-roformer models", description="List the models bs-roformer can download by name.")
    parser.add_argument("--cache-dir", help="model cache (default: $BS_ROFORMER_CACHE or ~/.cache/bs_roformer)")
    args = parser.parse_args(argv)
    cache = cache_dir(args.cache_dir)
    for model in REGISTRY.values():
        marks = [mark for mark, on in (("default", model.name == DEFAULT_MODEL), ("downloaded", (cache / model.file_name).exists())) if on]
        print(f"{model.name}{'  (' + ', '.join(marks) + ')' if marks else ''}")
        print(f"    {model.description}")
        print(f"    stems: {', '.join(model.stems)}   aliases: {', '.join(model.aliases)}")
    print(f"\ncache: {cache}")
    return 0
