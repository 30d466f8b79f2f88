"""The separation models: one file per model, each holding only what differs from the shared body, and
its typed config (see `bs_roformer.models.config` for the pattern)."""

from .band_split_model import BandSplitModel
from .band_split_roformer import BandSplitRoformer
from .bs_conformer import BSConformer, BSConformerConfig
from .bs_roformer import DEFAULT_FREQS_PER_BANDS, BSRoformer, BSRoformerConfig
from .bsrnn import BSRNN, BSRNNConfig
from .config import (
    AxialConfig,
    BandSplitConfig,
    ConfiguredModel,
    ConformerConfig,
    ContiguousBandsConfig,
    MelBandsConfig,
    ModelConfig,
    RoformerConfig,
    model_config,
    setting,
)
from .mel_band_conformer import MelBandConformer, MelBandConformerConfig
from .mel_band_roformer import MelBandRoformer, MelBandRoformerConfig

__all__ = [
    "BandSplitModel",
    "BandSplitRoformer",
    "BSRoformer",
    "MelBandRoformer",
    "BSRNN",
    "BSConformer",
    "MelBandConformer",
    "ModelConfig",
    "ConfiguredModel",
    "model_config",
    "setting",
    "BandSplitConfig",
    "AxialConfig",
    "RoformerConfig",
    "ConformerConfig",
    "ContiguousBandsConfig",
    "MelBandsConfig",
    "BSRoformerConfig",
    "MelBandRoformerConfig",
    "BSRNNConfig",
    "BSConformerConfig",
    "MelBandConformerConfig",
    "DEFAULT_FREQS_PER_BANDS",
]
