"""`bs-roformer evaluate --model NAME_OR_PATH --data ROOT/test`: SDR tables of a model on a folder of tracks."""

import argparse
from pathlib import Path
from typing import List

from ..inference.config import MODEL_TYPES
from ..inference.separator import Separator
from ..training.evaluate import MEASURES, evaluate
from ..training.tracks import check_dataset_folder
from .reporting import run_reporting


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bs-roformer evaluate",
        description="Separate every track of a MUSDB18-HQ-layout folder and report global SDR (MDX) and chunk SDR "
        "(museval v4) per track and stem.",
        epilog="Example: bs-roformer evaluate --model runs/vocals/best.ckpt --config runs/vocals/config.yaml --data musdb18hq/test",
    )
    parser.add_argument("-m", "--model", default=None, metavar="NAME_OR_PATH", help="registry name or checkpoint file (default: the default model)")
    parser.add_argument("--config", metavar="YAML", help="MSST-format config of a checkpoint file")
    parser.add_argument("--model-type", choices=sorted(MODEL_TYPES), help="when the config does not say")
    parser.add_argument("--data", required=True, metavar="DIR", help="folder of track folders (<track>/<stem>.wav)")
    parser.add_argument("--json", metavar="PATH", help="write the scores as JSON")
    parser.add_argument("--device", help="cuda, mps or cpu (default: CUDA > MPS > CPU)")
    parser.add_argument("--chunk-size", type=int, help="samples per chunk (default: from the config)")
    parser.add_argument("--overlap", type=int, help="chunks covering each sample (default: from the config)")
    parser.add_argument("--batch-size", type=int, help="chunks per model call (default: from the config)")
    parser.add_argument("--no-chunk-sdr", action="store_true", help="only global SDR (chunk SDR takes longer)")
    parser.add_argument("--cache-dir", help="where named models are downloaded")
    args = parser.parse_args(argv)

    return run_reporting("bs-roformer evaluate", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    check_dataset_folder(args.data)  # before a model is loaded or downloaded
    separator = Separator(
        args.model, config=args.config, model_type=args.model_type, device=args.device, chunk_size=args.chunk_size,
        num_overlap=args.overlap, batch_size=args.batch_size, cache=args.cache_dir, progress=True,
    )
    measures = ("global_sdr",) if args.no_chunk_sdr else MEASURES
    result = evaluate(separator, args.data, measures=measures)
    print(result.table())
    if args.json:
        result.save(Path(args.json))
        print(f"scores written to {args.json}")
    return 0
