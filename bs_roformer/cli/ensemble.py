"""`bs-roformer song.wav -m A -m B --ensemble avg_wave --ensemble-weights 1 2`: several models, stems combined."""

import sys
from pathlib import Path
from typing import List

from ..inference.ensemble import Ensemble
from ..inference.registry import PRESETS


def ensemble_models(args) -> List[str]:
    """The models of the command (-m, --extra_models, or a preset, which also sets the rule and weights)."""
    models = args.model + args.extra_models
    if args.ensemble_preset is None:
        return models
    preset = PRESETS.get(args.ensemble_preset)
    if preset is None:
        raise ValueError(f"no ensemble preset is called {args.ensemble_preset}; choose one of {', '.join(PRESETS)}")
    if models:
        raise ValueError("--ensemble-preset chooses the models: give it without -m")
    args.ensemble, args.ensemble_weights = preset.ensemble, preset.weights and list(preset.weights)
    return list(preset.models)


def separate_with_ensemble(args, models: List[str], files: List[Path], errors: List[str], options: dict) -> int:
    """Separate `files` with every model (one loaded at a time), combine per stem, report like one model."""
    if args.lossless:
        print("bs-roformer: --lossless applies to one model; an ensemble's combined stems do not add up to the mix", file=sys.stderr)
        return 2
    if args.config is not None:
        print("bs-roformer: --config describes one checkpoint; an ensemble takes registry names or checkpoints "
              "whose architecture can be read from the weights", file=sys.stderr)
        return 2
    try:
        ensemble = Ensemble(models, ensemble=args.ensemble, weights=args.ensemble_weights, model_type=args.model_type, **options)
        written, failed = ensemble.separate_files(
            files, args.output, template=args.filename_template, file_format=args.format, subtype=args.pcm_type,
            extract_instrumental=args.extract_instrumental, overwrite=args.overwrite,
        )
    except (OSError, ValueError) as error:
        print(f"bs-roformer: cannot run the ensemble: {error}", file=sys.stderr)
        return 1
    for note in ensemble.notes:
        print(f"note: {note}", file=sys.stderr)
    from .separate import summary

    inputs = len(files) + len(errors)
    skipped = [str(error) for _, error in failed if isinstance(error, FileExistsError)]  # kept, not failures
    errors = errors + [str(error) if str(path) in str(error) else f"{path}: {error}" for path, error in failed
                       if not isinstance(error, FileExistsError)]
    print(f"an ensemble of {len(models)} models ({args.ensemble})", file=sys.stderr)
    return summary(len(written), inputs, skipped, errors, Path(args.output))
