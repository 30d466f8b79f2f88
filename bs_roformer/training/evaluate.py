"""Evaluate a separator on a folder of tracks: global SDR and chunk SDR per track and stem, and the overall table.

Overall figures follow the conventions papers report: global SDR (MDX/SDX) is the mean over tracks, chunk
SDR (museval, BSSEval v4) the median over tracks of each track's median over 1-second frames.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch
from tqdm import tqdm

from ..inference.separator import Separator
from ..metrics import chunk_sdr, global_sdr, nan_aggregate
from .dataset import FullTrackDataset
from .tracks import find_tracks

MEASURES = ("global_sdr", "chunk_sdr")


@dataclass
class Evaluation:
    """scores[track][stem][measure] in dB; `overall[stem][measure]` aggregates them (NaN-free, see module doc)."""

    stems: List[str]
    scores: Dict[str, Dict[str, Dict[str, float]]] = field(default_factory=dict)

    @property
    def overall(self) -> Dict[str, Dict[str, float]]:
        table = {}
        for stem in [*self.stems, "mean"]:
            table[stem] = {}
            for measure in MEASURES:
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
        header = ["track"] + [f"{stem} {short}" for stem in [*self.stems, "mean"] for short in ("gSDR", "cSDR")]
        rows = [[track] + [self._value(track, stem, measure) for stem in [*self.stems, "mean"] for measure in MEASURES] for track in self.scores]
        overall = self.overall
        rows.append(["overall"] + [overall[stem][measure] for stem in [*self.stems, "mean"] for measure in MEASURES])
        width = max(len(header[0]), *(len(str(row[0])) for row in rows))
        lines = ["  ".join([header[0].ljust(width), *(name.rjust(max(len(name), 7)) for name in header[1:])])]
        for row in rows:
            cells = [f"{value:.2f}".rjust(max(len(name), 7)) for value, name in zip(row[1:], header[1:])]
            lines.append("  ".join([str(row[0]).ljust(width), *cells]))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"stems": self.stems, "tracks": self.scores, "overall": self.overall}

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1, allow_nan=True), encoding="utf-8")


def evaluate(
    separator: Separator,
    root: Union[str, Path],
    *,
    stems: Optional[List[str]] = None,
    measures=MEASURES,
    progress: bool = True,
) -> Evaluation:
    """Separate every track under `root` (MUSDB18-HQ layout) and score the model's stems against the references."""
    # a model whose outputs are not all dataset stems scores those it learns (frame-transformer: the vocals)
    stems = stems or list(getattr(separator.model, "target_stems", None) or separator.stems)
    # the mix is the sum of the stems only when they are all the instruments; else it must be on disk
    needs_mixture = set(separator.loaded.instruments) - set(stems) != set()
    tracks = FullTrackDataset(find_tracks(root, stems, require_mixture=needs_mixture), stems, channels=separator.loaded.audio_channels)
    result = Evaluation(stems=list(stems))
    for name, mixture, references in tqdm(tracks, desc="evaluating", disable=not progress):
        estimates = separator.separate_tensor(mixture)
        estimated = torch.stack([estimates[stem] for stem in stems])
        result.scores[name] = {stem: {} for stem in stems}
        if "global_sdr" in measures:
            for stem, value in zip(stems, global_sdr(references, estimated).tolist()):
                result.scores[name][stem]["global_sdr"] = value
        if "chunk_sdr" in measures:
            # all stems at once, as museval scores a track: a frame where any of them is silent counts for none
            for stem, value in zip(stems, chunk_sdr(references, estimated, sample_rate=separator.sample_rate).tolist()):
                result.scores[name][stem]["chunk_sdr"] = value
    return result
