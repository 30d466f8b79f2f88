"""`bs-roformer [separate] INPUT ...`: separate files and folders into stems.

The flags of Music-Source-Separation-Training's inference.py, audio-separator and the Lossless BS-RoFormer
command are accepted as aliases (the table: bs_roformer.compat.CLI_ALIASES), so their documented commands
run unchanged.
"""

import argparse
import sys
import warnings
from pathlib import Path
from typing import List

import torch
from tqdm import tqdm

from ..compat import cli_flags
from ..devices import PRECISIONS
from ..inference import sharding
from ..inference.audio_io import DEFAULT_TEMPLATE, SUBTYPES, check_format
from ..inference.backends import BACKENDS
from ..inference.batch import find_inputs, plan
from ..inference.config import MODEL_TYPES
from ..inference.ensemble import ALGORITHMS
from ..inference.errors import SeparationError
from ..inference.registry import DEFAULT_MODEL
from ..inference.separator import Separator
from .ensemble import ensemble_models, separate_with_ensemble
from .models import download_models, list_models


def build_parser() -> argparse.ArgumentParser:
    from . import summaries  # the package imports this module first

    parser = argparse.ArgumentParser(
        prog="bs-roformer",
        description="Separate songs into stems with BS-RoFormer / Mel-Band RoFormer models. Other commands "
        "(bs-roformer COMMAND --help): " + "; ".join(summaries()) + ".",
        epilog="Example: bs-roformer song.wav  ->  separated/song/{drums,bass,other,vocals}.wav. Folders keep their "
        "layout: albums/a/song.wav -> separated/a/song/. Exit status: 0 all separated or skipped, 1 some failed, "
        "2 usage error, 130 Ctrl-C, 143 SIGTERM.",
    )
    parser.add_argument("inputs", nargs="*", help="audio files and folders (searched recursively)")
    parser.add_argument("--input_folder", "--input-folder", action="append", default=[], metavar="DIR", help="a folder of audio files (repeatable)")

    model = parser.add_argument_group("model")
    model.add_argument("-m", *cli_flags("--model"), action="append", default=[], metavar="NAME_OR_PATH",
                       help=f"registry name (see `bs-roformer models`) or checkpoint file; default {DEFAULT_MODEL}. "
                       "Several -m: an ensemble of their stems")
    model.add_argument("--extra_models", nargs="+", default=[], metavar="NAME_OR_PATH", help="more models for the ensemble (as -m)")
    model.add_argument(*cli_flags("--ensemble"), choices=ALGORITHMS, default="avg_wave",
                       help="how several models' stems are combined: avg/median/min/max of waveforms (_wave) or of "
                       "STFT magnitudes with the mix's phase (_fft); default avg_wave")
    model.add_argument(*cli_flags("--ensemble-weights"), nargs="+", type=float, default=None, metavar="W",
                       help="one weight per model, for avg_wave / avg_fft")
    model.add_argument(*cli_flags("--ensemble-preset"), default=None, metavar="NAME",
                       help="a named ensemble: its models and rule (`bs-roformer models presets` lists them)")
    model.add_argument(*cli_flags("--download-only"), action="store_true",
                       help="download the -m models (checkpoint and config) into the cache and exit")
    model.add_argument("-l", "--list_models", action="store_true", help="list the registered models and exit (as `bs-roformer models`)")
    model.add_argument("--list_filter", action="append", default=[], metavar="TEXT", help="with --list_models: keep matching models")
    model.add_argument("--list_format", choices=["pretty", "json"], default="pretty", help="with --list_models: table or JSON")
    model.add_argument(*cli_flags("--config"), default=None, metavar="YAML", help="MSST-format YAML config for a checkpoint file")
    model.add_argument("--model_type", "--model-type", choices=sorted(MODEL_TYPES), help="when the config does not say")
    model.add_argument(*cli_flags("--cache-dir"), default=None, metavar="DIR", help="where named models are downloaded (default: $BS_ROFORMER_CACHE or ~/.cache/bs_roformer)")

    output = parser.add_argument_group("output")
    output.add_argument("-o", *cli_flags("--output"), default="separated", metavar="DIR", help="output folder (default: separated)")
    output.add_argument(*cli_flags("--filename-template"), default=DEFAULT_TEMPLATE,
                        help="output path inside the folder; fields {track} {stem} {ext} (default: %(default)s)")
    output.add_argument("--format", choices=sorted(SUBTYPES), default="wav", help="container (default: wav)")
    output.add_argument("--flac_file", "--flac", dest="format", action="store_const", const="flac", help="write FLAC (same as --format flac)")
    output.add_argument(*cli_flags("--pcm-type"), choices=["FLOAT", "PCM_16", "PCM_24", "PCM_32"], default=None,
                        help="sample format (default: FLOAT for WAV, PCM_24 for FLAC)")
    output.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them and skip the file)")
    output.add_argument("--nan-to-zero", "--nan_to_zero", action="store_true",
                        help="replace NaN and infinite input samples by silence (default: refuse such a file)")
    output.add_argument("--extract_instrumental", "--extract-instrumental", action="store_true", help="also write instrumental = mix - vocals (or the first stem; "
                        "with --lossless a single-stem model's complement is written once, as instrumental)")
    output.add_argument("--lossless", action="store_true",
                        help="make the stems add up exactly to the mix: the residual is separated again and distributed "
                        "(one more model pass for multi-stem models; single-stem models get their complement stem)")

    run = parser.add_argument_group("processing")
    run.add_argument("--device", default=None, help="cuda, cuda:1, mps or cpu (default: CUDA > MPS > CPU)")
    run.add_argument("--force_cpu", "--force-cpu", action="store_true", help="same as --device cpu")
    run.add_argument("--device_ids", "--device-ids", nargs="+", type=int, default=None, help="CUDA device ids (the first is used)")
    run.add_argument("--chunk-size", "--chunk_size", type=int, default=None, help="samples per chunk (default: from the config)")
    run.add_argument("--overlap", "--num_overlap", type=int, default=None, help="chunks covering each sample (default: from the config)")
    run.add_argument("--batch-size", "--batch_size", type=int, default=None, help="chunks per model call (default: from the config)")
    run.add_argument("--use_tta", "--tta", action="store_true", help="test-time augmentation: average with channel-swapped and polarity-inverted passes (3x slower)")
    run.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="fp32 (default), or bf16/fp16 autocast")
    run.add_argument("--backend", choices=BACKENDS, default="torch",
                     help="torch (default), or onnxruntime: the network runs in ONNX Runtime (pip install 'bs-roformer[onnx]')")
    run.add_argument("--onnx", default=None, metavar="FILE", help="the model's ONNX file for --backend onnxruntime (from "
                     "`bs-roformer export`; default: exported on first use into the cache)")
    run.add_argument("--compile", action="store_true", help="torch.compile the network (compiles for a minute or more; pays off for long batches)")
    run.add_argument("--disable_detailed_pbar", "--no-chunk-progress", action="store_true", help="no per-chunk progress bar")
    return parser


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        models = ensemble_models(args)
    except ValueError as error:
        print(f"bs-roformer: {error}", file=sys.stderr)
        return 2
    if args.download_only:
        return download_models(models or [DEFAULT_MODEL], args.cache_dir)
    if args.list_models:
        return list_models(args.list_filter, args.list_format == "json", args.cache_dir)
    output = Path(args.output)
    inputs, errors = find_inputs(args.inputs + args.input_folder, exclude=output)
    if not inputs and not errors:
        print("bs-roformer: give one or more audio files or folders, e.g. bs-roformer song.wav", file=sys.stderr)
        return 2
    for message in errors:  # before the model loads (or downloads)
        print(f"error: {message}", file=sys.stderr)
    if not inputs:
        return summary(0, len(errors), [], errors, output)
    try:
        check_format(args.format, args.pcm_type)
    except SeparationError as error:
        print(f"bs-roformer: {error}", file=sys.stderr)
        return 2

    device = "cpu" if args.force_cpu else args.device
    if device is None and args.device_ids:
        device = f"cuda:{args.device_ids[0]}"
    processes, device = sharding.start(device)  # under torchrun: this rank's share of the files
    options = dict(
        device=device,
        chunk_size=args.chunk_size,
        num_overlap=args.overlap,
        batch_size=args.batch_size,
        tta=args.use_tta,
        precision=args.precision,
        progress=not args.disable_detailed_pbar,
        cache=args.cache_dir,
    )
    if len(models) > 1:
        return separate_with_ensemble(args, models, [item.path for item in inputs], errors, options)
    separator = None
    try:
        with sharding.main_first(processes):
            separator = Separator(models[0] if models else None, config=args.config, model_type=args.model_type, **options,
                                  backend=args.backend, compile=args.compile, onnx=args.onnx)
    except (OSError, ValueError, ImportError) as error:  # the loaders' errors for bad files and configs
        print(f"bs-roformer: cannot load the model: {error}", file=sys.stderr)
    if not sharding.everyone(processes, separator is not None):
        return 1
    notes = list(separator.loaded.notes)
    if args.extract_instrumental and "vocals" not in separator.stems:
        notes.append(f"the model has no vocals stem: instrumental = mix - {separator.instrumental_of}")
    names = separator.output_names(args.lossless, args.extract_instrumental)
    try:
        jobs, planned = plan(inputs, output, args.filename_template, names, args.format)
    except SeparationError as error:
        print(f"bs-roformer: {error}", file=sys.stderr)
        return 2
    for note in notes + planned if processes.is_main else []:
        print(f"note: {note}", file=sys.stderr)
    jobs, errors = sharding.share(jobs, processes), errors if processes.is_main else []

    total, written, skipped = len(jobs) + len(errors), 0, []
    for job in tqdm(jobs, unit="file", desc="files", disable=len(jobs) < 2):
        existing = job.existing()
        if existing and not args.overwrite:
            skipped.append(f"{job.source}: outputs exist already ({', '.join(map(str, existing))})")
            tqdm.write(f"skipped: {skipped[-1]}", file=sys.stderr)
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("default")  # each distinct warning once per file
                separator.separate_file(
                    job.source,
                    job.output_dir,
                    template=args.filename_template,
                    file_format=args.format,
                    subtype=args.pcm_type,
                    lossless=args.lossless,
                    extract_instrumental=args.extract_instrumental,
                    overwrite=True,
                    track=job.track,
                    nan_to_zero=args.nan_to_zero,
                )
            written += 1
        except (SeparationError, OSError, torch.OutOfMemoryError) as error:
            message = describe(error, job.source)
            errors.append(message)
            tqdm.write(f"error: {message}", file=sys.stderr)
        for warning in caught:
            tqdm.write(f"warning: {warning.message}", file=sys.stderr)
    tally = sharding.combined(processes, sharding.Tally(total, written, errors, skipped))
    if not processes.is_main:
        return 1 if tally.errors else 0
    return summary(tally.written, tally.inputs, tally.skipped, tally.errors, output)


def describe(error: BaseException, source: Path) -> str:
    """One line naming the input, the path that failed (for OS errors) and why."""
    if isinstance(error, torch.OutOfMemoryError):
        message = "out of memory; use a smaller --batch-size or --chunk-size"
    elif isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        message = f"{where}{error.strerror[0].lower()}{error.strerror[1:]}"
    else:
        message = str(error)
    return message if str(source) in message else f"{source}: {message}"


def summary(written: int, inputs: int, skipped: List[str], errors: List[str], output: Path) -> int:
    """Print what the run did; the exit status: 1 if anything failed, else 0 (skips are not failures)."""
    line = f"separated {written} of {inputs} inputs into {output}"
    if skipped:
        line += f"; {len(skipped)} skipped (outputs exist already; --overwrite replaces them)"
    print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} failed:", file=sys.stderr)
        for message in errors:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0
