"""`bs-roformer models`: list, inspect and download the checkpoints known by name.

    bs-roformer models                         # every entry: name, architecture, stems, size, downloaded
    bs-roformer models --filter vocals --filter unwa   # entries matching every filter (stem, architecture, author, name)
    bs-roformer models --json                  # the same, machine-readable
    bs-roformer models info NAME               # one entry in full (also by alias or checkpoint file name)
    bs-roformer models download NAME ...       # download checkpoints (and configs) without separating
    bs-roformer models presets                 # the named ensembles (--ensemble-preset)
"""

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, List, Optional

from ..inference.registry import (
    DEFAULT_MODEL, PRESETS, REGISTRY, RegisteredModel, cache_dir, fetch_model, read_registry, registered, suggestions,
)

README_MARKERS = ("<!-- models-table -->", "<!-- /models-table -->")


def main(argv: List[str]) -> int:
    if argv[:1] == ["info"]:
        return info(argv[1:])
    if argv[:1] == ["download"]:
        return download(argv[1:])
    if argv[:1] == ["presets"]:
        return print_presets()
    parser = argparse.ArgumentParser(prog="bs-roformer models", description="List the models bs-roformer can download by name. "
                                     "Also: `bs-roformer models info NAME`, `bs-roformer models download NAME ...`, `bs-roformer models presets`.")
    parser.add_argument("--filter", "--list_filter", action="append", default=[], metavar="TEXT",
                        help="keep entries whose stems, architecture, variant, authors or names contain TEXT (repeat: all must match)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--markdown", action="store_true", help="print the Markdown table of docs/models.md")
    parser.add_argument("--cache-dir", "--model_file_dir", help="model cache (default: $BS_ROFORMER_CACHE or ~/.cache/bs_roformer)")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(filtered(args.filter)))
        return 0
    return list_models(args.filter, args.json, args.cache_dir)


def filtered(filters: List[str]) -> List[RegisteredModel]:
    return [model for model in REGISTRY.values() if all(matches(model, text) for text in filters)]


def list_models(filters: List[str], json_output: bool = False, cache=None) -> int:
    """Print the entries matching every filter, as a table or JSON (`models`, `-l/--list_models`)."""
    entries = filtered(filters)
    if json_output:
        print(json.dumps([as_json(model, cache) for model in entries], indent=1))
    else:
        print_table(entries, cache)
        print(f"\n{len(entries)} of {len(REGISTRY)} models; cache: {cache_dir(cache)}", file=sys.stderr)
    return 0


def print_presets() -> int:
    for preset in PRESETS.values():
        weights = f", weights {' '.join(map(str, preset.weights))}" if preset.weights else ""
        print(f"{preset.name}: {' + '.join(preset.models)} ({preset.ensemble}{weights})\n    {preset.description}")
    return 0


def matches(model: RegisteredModel, text: str) -> bool:
    """Whether `text` is part of the entry's stems, architecture, variant, authors or names (any case)."""
    text = text.lower()
    fields = [*model.stems, model.architecture, model.variant or "plain", *model.authors, *model.names(), model.purpose]
    return any(text in value.lower() for value in fields)


def as_json(model: RegisteredModel, cache=None) -> dict:
    return {**asdict(model), "file_name": model.file_name, "downloaded": model.downloaded(cache), "default": model.name == DEFAULT_MODEL}


def architecture_label(model: RegisteredModel) -> str:
    return model.architecture + (f" ({model.variant})" if model.variant else "")


def size_label(size: Optional[int]) -> str:
    return f"{size / 1e6:.0f} MB" if size else "?"


def print_table(entries: Iterable[RegisteredModel], cache=None) -> None:
    rows = [(model.name + (" (default)" if model.name == DEFAULT_MODEL else ""), architecture_label(model),
             ", ".join(model.stems), size_label(model.size), "yes" if model.downloaded(cache) else "")
            for model in entries]
    header = ("name", "architecture", "stems", "size", "downloaded")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip())


def info(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="bs-roformer models info", description="Show one registry entry.")
    parser.add_argument("name", help="name, alias or checkpoint file name")
    parser.add_argument("--cache-dir", "--model_file_dir")
    args = parser.parse_args(argv)
    model = registered(args.name)
    if model is None:
        close = suggestions(args.name)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        print(f"bs-roformer models: no registered model is called {args.name}{hint}", file=sys.stderr)
        return 1
    cache = args.cache_dir
    config = model.config_path or f"downloaded from {' or '.join(model.config_urls)} to {model.config_cache_path(cache)}"
    lines = [
        ("name", model.name), ("aliases", ", ".join(model.aliases)), ("architecture", architecture_label(model)),
        ("stems", ", ".join(model.stems)), ("purpose", model.purpose), ("authors", ", ".join(model.authors)),
        ("description", model.description), ("size", size_label(model.size) + (f" ({model.size} bytes)" if model.size else "")),
        ("checkpoint", " or ".join(model.urls)), ("sha256", model.sha256 or "recorded on first download"),
        ("config", str(config)), ("cache", f"{model.checkpoint_path(cache)} ({'downloaded' if model.downloaded(cache) else 'not downloaded'})"),
        ("source", model.source),
    ]
    for key, value in lines:
        if value:
            print(f"{key + ':':14}{value}")
    return 0


def download(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="bs-roformer models download", description="Download models (checkpoint and config) into the cache.")
    parser.add_argument("names", nargs="+", help="names, aliases or checkpoint file names")
    parser.add_argument("--cache-dir", "--model_file_dir")
    args = parser.parse_args(argv)
    return download_models(args.names, args.cache_dir)


def download_models(names: List[str], cache=None) -> int:
    """Download registry models into the cache (`models download`, `--download-only`); exit status."""
    failed = 0
    for name in names:
        model = registered(name)
        try:
            if model is None:
                raise ValueError("no registered model has this name (see `bs-roformer models`)")
            checkpoint, config = fetch_model(model, cache)
            print(f"{model.name}: {checkpoint} (config {config})")
        except (OSError, ValueError) as error:
            failed += 1
            print(f"bs-roformer models: {name}: {error}", file=sys.stderr)
    return 1 if failed else 0


# --- the generated documentation -------------------------------------------------------------------------

def stems_label(model: RegisteredModel, limit: int = 6) -> str:
    if len(model.stems) <= limit:
        return ", ".join(model.stems)
    return f"{len(model.stems)} stems: {', '.join(model.stems[:limit])}, ..."


def markdown_table(entries: Iterable[RegisteredModel]) -> str:
    """The full table (docs/models.md)."""
    lines = ["| name | architecture | stems | size | sha256 | also known as |", "|---|---|---|---|---|---|"]
    for model in entries:
        aliases = ", ".join(f"`{alias}`" for alias in model.aliases)
        lines.append(f"| `{model.name}` | {architecture_label(model)} | {stems_label(model)} | {size_label(model.size)} | "
                     f"{'pinned' if model.sha256 else 'recorded'} | {aliases} |")
    return "\n".join(lines)


def readme_summary(entries: List[RegisteredModel]) -> str:
    """README's part: counts, the models per stem with the most entries, and the full table folded."""
    count = len(entries)
    pinned = sum(1 for model in entries if model.sha256)
    shipped = sum(1 for model in entries if model.config)
    variants = sorted({model.variant for model in entries if model.variant})
    by_stem = {}
    for model in entries:
        for stem in model.stems:
            by_stem.setdefault(stem, []).append(model)
    common = sorted(by_stem.items(), key=lambda item: (-len(item[1]), item[0]))[:8]
    lines = [
        f"{count} models ({pinned} with a published sha256, pinned; {shipped} with their config shipped, the others "
        f"download it next to the checkpoint); variants: {', '.join(variants)}. The most common stems:",
        "",
        "| stem | models | e.g. |",
        "|---|---|---|",
    ]
    for stem, models in common:
        examples = ", ".join(f"`{model.name}`" for model in sorted(models, key=lambda model: len(model.stems))[:3])
        lines.append(f"| {stem} | {len(models)} | {examples} |")
    lines += ["", "<details><summary>All models</summary>", "", markdown_table(entries), "", "</details>"]
    return "\n".join(lines)


def write_model_docs(root: Path) -> None:
    """Regenerate README's models table (between its markers) and docs/models.md from the registry."""
    entries = list(read_registry(root / "bs_roformer" / "data" / "registry.json").values())
    docs = root / "docs" / "models.md"
    docs.write_text("# Models known by name\n\nGenerated by `python scripts/build_registry.py` from "
                    "`bs_roformer/data/registry.json`; `bs-roformer models` lists the same.\n\n"
                    + markdown_table(entries) + "\n", encoding="utf-8")
    readme = root / "README.md"
    readme.write_text(with_readme_table(readme.read_text(encoding="utf-8"), readme_summary(entries)), encoding="utf-8")


def with_readme_table(text: str, table: str) -> str:
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise ValueError(f"README.md needs the markers {start} and {end} around the models table")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"
