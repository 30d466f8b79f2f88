"""`bs-roformer export MODEL out.onnx`: the network between STFT and iSTFT as an ONNX file."""

import argparse
import sys
from pathlib import Path
from typing import List

from ..inference.config import MODEL_TYPES
from ..inference.loading import load_model
from ..inference.onnx_export import DEFAULT_OPSET, export_onnx


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bs-roformer export",
        description="Export a model's spectrum -> masks network to ONNX (dynamic batch and frames; the STFT and "
        "iSTFT stay in torch). Separate with it: bs-roformer song.wav -m MODEL --backend onnxruntime --onnx out.onnx",
    )
    parser.add_argument("model", metavar="NAME_OR_PATH", help="registry name or checkpoint file")
    parser.add_argument("output", metavar="OUT.onnx", help="where to write the ONNX file")
    parser.add_argument("--config", metavar="YAML", help="MSST-format config of a checkpoint file")
    parser.add_argument("--model-type", "--model_type", choices=sorted(MODEL_TYPES), help="when the config does not say")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset, 17 or newer (default: %(default)s)")
    parser.add_argument("--cache-dir", help="where named models are downloaded")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        print(f"bs-roformer export: {output} exists already; use --overwrite", file=sys.stderr)
        return 1
    try:
        loaded = load_model(args.model, config=args.config, model_type=args.model_type, cache=args.cache_dir)
        export_onnx(loaded, output, opset=args.opset)
    except (OSError, ValueError, TypeError, ImportError) as error:
        print(f"bs-roformer export: {error}", file=sys.stderr)
        return 1
    print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB); separate with --backend onnxruntime --onnx {output}")
    return 0
