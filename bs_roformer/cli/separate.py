"""`bs-roformer [separate] INPUT ...`: separate files and folders into stems.

The flags of Music-Source-Separation-Training's inference.py, audio-separator and the Lossless BS-RoFormer
command are accepted as aliases (the table: bs_roformer.compat.CLI_ALIASES), so their documented commands
run unchanged.
"""

import argparse
import sys
from pathlib import Path
from typing import List, Tuple

from tqdm import tqdm

from ..compat import cli_flags
from ..inference import sharding
from ..inference.audio_io import AUDIO_EXTENSIONS, DEFAULT_TEMPLATE, SUBTYPES
from ..inference.backends import BACKENDS
from ..inference.config import MODEL_TYPES
from ..inference.registry import DEFAULT_MODEL
from ..inference.separator import PRECISIONS, Separator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bs-roformer",
        description="Separate songs into stems with BS-RoFormer / Mel-Band RoFormer models. "
        "Other commands: `bs-roformer models` lists the models known by name.",
        epilog="Example: bs-roformer song.wav  ->  separated/song/{drums,bass,other,vocals}.wav",
    )
    parser.add_argument("inputs", nargs="*", help="audio files and folders (searched recursively)")
    parser.add_argument("--input_folder", "--input-folder", action="append", default=[], metavar="DIR", help="a folder of audio files (repeatable)")

    model = parser.add_argument_group("model")
    model.add_argument("-m", *cli_flags("--model"), default=None, metavar="NAME_OR_PATH",
                       help=f"registry name (see `bs-roformer models`) or checkpoint file; default {DEFAULT_MODEL}")
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
    output.add_argument("--extract_instrumental", "--extract-instrumental", action="store_true", help="also write instrumental = mix - vocals (or the first stem)")
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


def collect_inputs(paths: List[str]) -> Tuple[List[Path], List[str]]:
    """Audio files from files and folders, and an error line for each path that does not exist."""
    files, errors = [], []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        elif path.exists():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    files, errors = collect_inputs(args.inputs + args.input_folder)
    if not files and not errors:
        print("bs-roformer: give one or more audio files or folders, e.g. bs-roformer song.wav", file=sys.stderr)
        return 2

    device = "cpu" if args.force_cpu else args.device
    if device is None and args.device_ids:
        device = f"cuda:{args.device_ids[0]}"
    processes, device = sharding.start(device)  # under torchrun: this rank's share of the files
    separator = None
    try:
        with sharding.main_first(processes):
            separator = Separator(
                args.model,
                config=args.config,
                model_type=args.model_type,
                device=device,
                chunk_size=args.chunk_size,
                num_overlap=args.overlap,
                batch_size=args.batch_size,
                tta=args.use_tta,
                precision=args.precision,
                progress=not args.disable_detailed_pbar,
                cache=args.cache_dir,
                backend=args.backend,
                compile=args.compile,
                onnx=args.onnx,
            )
    except (OSError, ValueError, TypeError, ImportError) as error:
        print(f"bs-roformer: cannot load the model: {error}", file=sys.stderr)
    if not sharding.everyone(processes, separator is not None):
        return 1
    for note in separator.loaded.notes if processes.is_main else []:
        print(f"note: {note}", file=sys.stderr)

    errors = errors if processes.is_main else []
    files = sharding.share(files, processes)
    inputs, written = len(files) + len(errors), 0
    for path in tqdm(files, unit="file", desc="files", disable=len(files) < 2):
        try:
            separator.separate_file(
                path,
                args.output,
                template=args.filename_template,
                file_format=args.format,
                subtype=args.pcm_type,
                lossless=args.lossless,
                extract_instrumental=args.extract_instrumental,
                overwrite=args.overwrite,
            )
            written += 1
        except (OSError, ValueError, RuntimeError) as error:
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            errors.append(message)
            tqdm.write(f"error: {message}", file=sys.stderr)

    tally = sharding.combined(processes, sharding.Tally(inputs, written, errors))
    inputs, written, errors = tally.inputs, tally.written, tally.errors
    if not processes.is_main:
        return 1 if errors else 0
    print(f"separated {written} of {inputs} inputs into {args.output}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} failed:", file=sys.stderr)
        for message in errors:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0
