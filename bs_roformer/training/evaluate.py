"""Evaluate a separator on a folder of tracks: global SDR and chunk SDR per track and stem, and the overall table.

The one scoring path: `bs-roformer evaluate` and the trainer's validation both call `evaluate`.
Overall figures follow the conventions papers report: global SDR (MDX/SDX) is the mean over tracks, chunk
SDR (museval, BSSEval v4) the median over tracks of each track's median over 1-second frames.
A track at another sample rate than the model's is resampled for the model and scored at its own rate.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import atomic_path
from ..inference.separator import Separator
from ..metrics import chunk_sdr, global_sdr, nan_aggregate
from .dataset import FullTrackDataset
from .tracks import find_tracks

MEASURES = ("global_sdr", "chunk_sdr")  # what `bs-roformer evaluate` reports
SHORT_NAMES = {"global_sdr": "gSDR", "chunk_sdr": "cSDR", "mean_abs_error": "MAE"}


@dataclass
class Evaluation:
    """scores[track][stem][measure] (SDR in dB); `overall[stem][measure]` aggregates them (NaN-free, see module doc)."""

    stems: List[str]
    scores: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)
    measures: Tuple[str, ...] = MEASURES

    @classmethod
    def combined(cls, parts: Sequence["Evaluation"]) -> "Evaluation":
        """One evaluation of the tracks several parts scored (e.g. one part per training process), in name order."""
        scores = {name: part.scores[name] for part in parts for name in part.scores}
        return cls(stems=list(parts[0].stems), scores=dict(sorted(scores.items())), measures=parts[0].measures)

    @property
    def overall(self) -> Dict[str, Dict[str, float]]:
        table = {}
        for stem in [*self.stems, "mean"]:
            table[stem] = {}
            for measure in self.measures:
                values = [self._value(track, stem, measure) for track in self.scores]
                # a track whose reference is silent throughout has no chunk SDR: it is left out
                table[stem][measure] = nan_aggregate(values, np.median if measure == "chunk_sdr" else np.mean)
        return table

    def _value(self, track: str, stem: str, measure: str) -> float:
        if stem != "mean":
            return self.scores[track][stem].get(measure, float("nan"))
        return nan_aggregate([self.scores[track][name].get(measure, float("nan")) for name in self.stems], np.mean)

    def table(self) -> str:
        """Per-track rows, then the overall rows, one column per stem and measure."""
        columns = [(stem, measure) for stem in [*self.stems, "mean"] for measure in self.measures]
        header = ["track"] + [f"{stem} {SHORT_NAMES.get(measure, measure)}" for stem, measure in columns]
        rows = [[track] + [self._value(track, stem, measure) for stem, measure in columns] for track in self.scores]
        overall = self.overall
        rows.append(["overall"] + [overall[stem][measure] for stem, measure in columns])
        width = max(len(header[0]), *(len(str(row[0])) for row in rows))
        lines = ["  ".join([header[0].ljust(width), *(name.rjust(max(len(name), 7)) for name in header[1:])])]
        for row in rows:
            cells = [f"{value:.2f}".rjust(max(len(name), 7)) for value, name in zip(row[1:], header[1:])]
            lines.append("  ".join([str(row[0]).ljust(width), *cells]))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"stems": self.stems, "measures": list(self.measures), "tracks": self.scores, "overall": self.overall}

    def save(self, path: Union[str, Path]) -> None:
        with atomic_path(Path(path)) as partial:  # never a half-written table
            partial.write_text(json.dumps(self.to_json(), indent=1, allow_nan=True), encoding="utf-8")


def evaluate(
    separator: Separator,
    root: Union[str, Path],
    *,
    stems: Optional[List[str]] = None,
    measures: Sequence[str] = MEASURES,
    progress: bool = True,
    part: Tuple[int, int] = (0, 1),
) -> Evaluation:
    """Separate every track under `root` (MUSDB18-HQ layout) and score the model's stems against the references.

    The mix is a track's mixture file, else the sum of the model's instruments (all of which it must then
    have). measures: any of global_sdr, chunk_sdr, mean_abs_error (mean |reference - estimate|).
    part: (k, n) scores only the tracks k, k + n, k + 2n, ... (one share of n; see Evaluation.combined).
    """
    stems = list(stems or separator.stems)
    unknown = sorted(set(stems) - set(separator.stems)) + sorted(set(measures) - set(SHORT_NAMES))
    if unknown:
        raise ValueError(f"cannot score {', '.join(unknown)}: the model separates {', '.join(separator.stems)}, "
                         f"and the measures are {', '.join(SHORT_NAMES)}")
    instruments = separator.loaded.instruments
    # each track in its own channel count, as separating its file would give it
    tracks = FullTrackDataset(find_tracks(root, stems, mixture_of=instruments), stems, channels=None, mixture_of=instruments)
    result = Evaluation(stems=stems, measures=tuple(measures))
    index, count = part
    for position in tqdm(range(index, len(tracks), count), desc="evaluating", disable=not progress):
        name, mixture, references = tracks[position]
        rate = tracks.tracks[position].sample_rate
        estimates = separator.separate_tensor(mixture, sample_rate=rate)
        result.scores[name] = score(references, torch.stack([estimates[stem] for stem in stems]), stems, measures, rate)
    return result


def score(references: torch.Tensor, estimates: torch.Tensor, stems: Sequence[str], measures: Sequence[str], sample_rate: int):
    """{stem: {measure: value}} of one track's (stems, channels, t) estimates at `sample_rate`."""
    values = {}
    if "global_sdr" in measures:
        values["global_sdr"] = global_sdr(references, estimates).tolist()
    if "chunk_sdr" in measures:
        # all stems at once, as museval scores a track: a frame where any of them is silent counts for none
        values["chunk_sdr"] = chunk_sdr(references, estimates, sample_rate=sample_rate).tolist()
    if "mean_abs_error" in measures:
        values["mean_abs_error"] = (references - estimates).abs().mean(dim=(1, 2)).tolist()
    return {stem: {measure: float(column[index]) for measure, column in values.items()} for index, stem in enumerate(stems)}
