"""The separation models: one file per model, each holding only what differs from the shared body."""

from .band_split_model import BandSplitModel
from .band_split_roformer import BandSplitRoformer
from .bs_conformer import BSConformer
from .bs_roformer import DEFAULT_FREQS_PER_BANDS, BSRoformer
from .bsrnn import BSRNN
from .mel_band_conformer import MelBandConformer
from .mel_band_roformer import MelBandRoformer

__all__ = ["BandSplitModel", "BandSplitRoformer", "BSRoformer", "MelBandRoformer", "BSRNN", "BSConformer", "MelBandConformer",
           "DEFAULT_FREQS_PER_BANDS"]
