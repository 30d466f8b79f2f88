"""Ensembles: several models separate one input and their stems are combined per stem name.

    ensemble = Separator(["model_a", "model_b"], ensemble="avg_wave", weights=[1, 2])
    stems = ensemble.separate_tensor(mix, sample_rate=44100)
    written, errors = ensemble.separate_files(["a.wav", "b.flac"], "separated")

The rules are audio-separator's and MSST's names: avg / median / min / max of the waveforms (`*_wave`; min and
max pick, per sample, the value of smallest or largest magnitude), or of the STFT magnitudes (`*_fft`, n_fft
2048, hop 1024 as both tools), given the phase of the mix. Weights (one per model) weight the averages;
the median, min and max take none. A stem only one model gives is passed through unchanged.

Models are loaded and run one at a time, each at its own sample rate and chunking, so memory stays that of
the largest model: tensors are separated model after model in memory; files model after model into a
temporary folder (float WAV, next to the outputs), then combined stem by stem and written.
"""

import gc
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import torch

from . import audio_io
from .loading import check_model_name
from .registry import fetch_model, registered
from .separator import Separator

RULES = ("avg", "median", "min", "max")
ALGORITHMS = tuple(f"{rule}_{domain}" for domain in ("wave", "fft") for rule in RULES)
FFT_SIZE, FFT_HOP = 2048, 1024

T = TypeVar("T")


def check_ensemble(algorithm: str, weights: Optional[Sequence[float]], count: int) -> Optional[torch.Tensor]:
    """Validate an ensemble rule and its weights (one per model); the weights as a tensor, or None."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown ensemble rule {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    if weights is None:
        return None
    weights = torch.as_tensor(list(weights), dtype=torch.float64)
    if weights.numel() != count:
        raise ValueError(f"{weights.numel()} ensemble weights for {count} models: give one weight per model")
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"ensemble weights must be finite, non-negative and not all zero, got {weights.tolist()}")
    if not algorithm.startswith("avg") and not (weights == weights[0]).all():
        raise ValueError(f"{algorithm} takes no weights (they weight avg_wave and avg_fft)")
    return weights


def combine(
    estimates: Sequence[torch.Tensor],
    algorithm: str = "avg_wave",
    weights: Optional[Sequence[float]] = None,
    mix: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """One stem from several models, [(channels, t), ...] -> (channels, t); `*_fft` rules need the mix (channels, t)."""
    weight = check_ensemble(algorithm, weights, len(estimates))
    stack = torch.stack([estimate.float() for estimate in estimates])  # (models, channels, t)
    rule, domain = algorithm.split("_")
    if domain == "wave":
        return _reduce(stack, rule, weight, signed=True)
    if mix is None:
        raise ValueError(f"{algorithm} needs the mix: it gives the combined magnitudes the mix's phase")
    length = stack.shape[-1]
    magnitude = _reduce(_stft(stack).abs(), rule, weight, signed=False)
    phase = torch.angle(_stft(mix.float().expand_as(stack[0])))
    return torch.istft(torch.polar(magnitude, phase), FFT_SIZE, FFT_HOP, window=_window(), length=length)


def _reduce(stack: torch.Tensor, rule: str, weight: Optional[torch.Tensor], signed: bool) -> torch.Tensor:
    """Combine along the first (model) axis."""
    if rule == "avg":
        if weight is None:
            return stack.mean(dim=0)
        weight = weight.to(stack.dtype).view(-1, *[1] * (stack.ndim - 1))
        return (stack * weight).sum(dim=0) / weight.sum()
    if rule == "median":  # the mean of the two middle values for an even count, as numpy's
        ordered = stack.sort(dim=0).values
        count = stack.shape[0]
        return (ordered[(count - 1) // 2] + ordered[count // 2]) / 2
    key = stack.abs() if signed else stack
    index = key.argmin(dim=0, keepdim=True) if rule == "min" else key.argmax(dim=0, keepdim=True)
    return stack.gather(0, index)[0]


def _window() -> torch.Tensor:
    return torch.hann_window(FFT_SIZE)


def _stft(audio: torch.Tensor) -> torch.Tensor:
    """(..., t) -> complex (..., bins, frames)."""
    flat = audio.reshape(-1, audio.shape[-1])
    spectrum = torch.stft(flat, FFT_SIZE, FFT_HOP, window=_window(), return_complex=True)
    return spectrum.reshape(*audio.shape[:-1], *spectrum.shape[-2:])


def combine_stems(
    results: Sequence[Dict[str, torch.Tensor]],
    algorithm: str = "avg_wave",
    weights: Optional[Sequence[float]] = None,
    mix: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """Several models' {stem: (channels, t) or (t,)} -> {stem: combined} over the models that give each
    stem (weights: one per result), in the order the stems first appear; a stem of one model passes through."""
    names = list(dict.fromkeys(name for result in results for name in result))
    combined = {}
    for name in names:
        given = [index for index, result in enumerate(results) if name in result]
        estimates = [results[index][name] for index in given]
        if len(estimates) == 1:
            combined[name] = estimates[0]
            continue
        stem_weights = None if weights is None else [weights[index] for index in given]
        if estimates[0].ndim == 1:  # mono (t,)
            combined[name] = combine([e[None] for e in estimates], algorithm, stem_weights, None if mix is None else mix.reshape(1, -1))[0]
        else:
            combined[name] = combine(estimates, algorithm, stem_weights, mix)
    return combined


class Ensemble:
    """Separate with several models and combine their stems per name (see the module's docstring).

    models: registry names, checkpoint files or `LoadedModel`s (each `Separator` takes one of them).
    ensemble: one of ALGORITHMS; weights: one per model, for avg_wave and avg_fft.
    The other keywords (device, chunk_size, num_overlap, batch_size, tta, precision, progress, cache) go to
    every model's `Separator`; chunking defaults to each model's own config.
    """

    def __init__(self, models: Sequence, *, ensemble: str = "avg_wave", weights: Optional[Sequence[float]] = None, **options):
        if len(models) < 1:
            raise ValueError("an ensemble needs at least one model")
        if options.get("config") is not None:
            raise ValueError("an ensemble takes registry names or checkpoints whose architecture can be read, not one config")
        self.models = list(models)
        self.algorithm = ensemble
        self.weights = weights
        check_ensemble(ensemble, weights, len(self.models))
        self.options = {key: value for key, value in options.items() if key != "config"}
        self.notes: List[str] = []  # what loading each model assumed (LoadedModel.notes), "model: note"

    def prepare(self) -> None:
        """Fail before any separation: every model must exist, and registry models are downloaded now."""
        for model in self.models:
            if isinstance(model, (str, Path)):
                check_model_name(model)
                entry = None if Path(model).exists() else registered(str(model))
                if entry is not None:
                    fetch_model(entry, self.options.get("cache"), progress=self.options.get("progress", False))

    def known_stems(self, extract_instrumental: bool = False) -> Optional[List[str]]:
        """The stems the ensemble will write, when every model is a registry entry with a shipped config."""
        entries = [registered(str(model)) if isinstance(model, (str, Path)) and not Path(model).exists() else None for model in self.models]
        if any(entry is None or entry.config_path is None or not entry.stems for entry in entries):
            return None
        names = [name for entry in entries for name in entry.stems]
        if extract_instrumental:
            names.append("instrumental")
        return list(dict.fromkeys(names))

    def with_each_model(self, work: Callable[[int, object], T]) -> List[T]:
        """Run `work(index, separator)` for every model in turn, each loaded only while it works."""
        results = []
        for index, model in enumerate(self.models):
            separator = Separator(model, **self.options)
            self.notes += [f"{model}: {note}" for note in separator.loaded.notes]
            results.append(work(index, separator))
            del separator  # before the next model loads
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        return results

    def separate_tensor(self, mix: torch.Tensor, sample_rate: int, *, extract_instrumental: bool = False) -> Dict[str, torch.Tensor]:
        """(channels, t) or (t,) mix at `sample_rate` -> {stem: (channels, t)}, combined over the models."""
        if sample_rate is None:
            raise ValueError("an ensemble's models may run at other rates: give the mix's sample_rate")
        self.prepare()
        results = self.with_each_model(lambda _, separator: separator.separate_tensor(mix, sample_rate, extract_instrumental=extract_instrumental))
        return combine_stems(results, self.algorithm, self.weights, mix)

    def separate_file(self, path: Union[str, Path], output_dir: Union[str, Path], **options) -> Dict[str, Path]:
        """One file; see `separate_files`."""
        written, errors = self.separate_files([path], output_dir, **options)
        if errors:
            raise errors[0][1]
        return written[0][1]

    def separate_files(
        self,
        paths: Sequence[Union[str, Path]],
        output_dir: Union[str, Path],
        *,
        template: str = audio_io.DEFAULT_TEMPLATE,
        file_format: str = "wav",
        subtype: Optional[str] = None,
        extract_instrumental: bool = False,
        overwrite: bool = False,
    ) -> Tuple[List[Tuple[Path, Dict[str, Path]]], List[Tuple[Path, Exception]]]:
        """Separate files with every model in turn (each model loaded once), then combine and write.

        Returns [(input, {stem: output})] and [(input, error)] for the files that failed; a failure of one
        file does not stop the others. Outputs are written as `Separator.separate_file` writes them.
        """
        self.prepare()
        paths = [Path(path) for path in paths]
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        failed: Dict[int, Exception] = {}
        names = None if overwrite else self.known_stems(extract_instrumental)
        for index, path in enumerate(paths if names else []):  # skip tracks done already before any model runs
            try:
                _refuse_existing(path, audio_io.output_paths(output_dir, template, path.stem, names, file_format))
            except (OSError, ValueError) as error:
                failed[index] = error
        with tempfile.TemporaryDirectory(prefix=".ensemble-", dir=output_dir) as work:
            parts: List[Dict[str, List[Tuple[int, Path]]]] = [{} for _ in paths]

            def separate_all(model_index, separator):
                for index, path in enumerate(paths):
                    if index in failed:
                        continue
                    try:
                        outputs = separator.separate_file(path, work, template=f"{index}/{model_index}/{{stem}}.{{ext}}",
                                                          file_format="wav", subtype="FLOAT", extract_instrumental=extract_instrumental)
                    except (OSError, ValueError) as error:  # a bad input file; a RuntimeError is a bug and stops the run
                        failed[index] = error
                        continue
                    for stem, output in outputs.items():
                        parts[index].setdefault(stem, []).append((model_index, output))

            if len(failed) < len(paths):
                self.with_each_model(separate_all)

            written = []
            for index, path in enumerate(paths):
                if index in failed:
                    continue
                try:
                    written.append((path, self._write_combined(path, parts[index], output_dir, template, file_format, subtype, overwrite)))
                except (OSError, ValueError) as error:
                    failed[index] = error
        return written, [(paths[index], failed[index]) for index in sorted(failed)]

    def _write_combined(self, path: Path, parts, output_dir: Path, template: str, file_format: str, subtype, overwrite: bool) -> Dict[str, Path]:
        targets = audio_io.output_paths(output_dir, template, path.stem, list(parts), file_format)
        if not overwrite:
            _refuse_existing(path, targets)
        reader = audio_io.AudioReader(path)
        mix = reader.read() if self.algorithm.endswith("fft") else None
        stems = []
        for name, files in parts.items():  # one stem at a time: memory holds one stem of every model
            results = [{name: audio_io.read_audio(file)[0]} for _, file in files]
            weights = None if self.weights is None else [self.weights[model] for model, _ in files]
            stems.append(combine_stems(results, self.algorithm, weights, mix)[name])
        with audio_io.StemWriters(targets, reader.sample_rate, reader.channels, file_format, subtype) as writers:
            writers.write(torch.stack(stems))
        return targets


def _refuse_existing(path: Path, targets: Dict[str, Path]) -> None:
    existing = [str(target) for target in targets.values() if target.exists()]
    if existing:
        raise FileExistsError(f"{path}: outputs exist already ({', '.join(existing)}); use --overwrite")
