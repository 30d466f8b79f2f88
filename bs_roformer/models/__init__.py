"""The separation models: one file per model, each holding only what differs from the shared body, and
its typed config (see `bs_roformer.models.config` for the pattern)."""

from .band_split_model import BandSplitModel
from .band_split_roformer import BandSplitRoformer
from .bs_roformer import DEFAULT_FREQS_PER_BANDS, BSRoformer, BSRoformerConfig
from .bsrnn import BSRNN, BSRNNConfig
from .config import BandSplitConfig, ConfiguredModel, ModelConfig, RoformerConfig, model_config, setting
from .mel_band_roformer import MelBandRoformer, MelBandRoformerConfig

__all__ = [
    "BandSplitModel",
    "BandSplitRoformer",
    "BSRoformer",
    "MelBandRoformer",
    "BSRNN",
    "ModelConfig",
    "ConfiguredModel",
    "model_config",
    "setting",
    "BandSplitConfig",
    "RoformerConfig",
    "BSRoformerConfig",
    "MelBandRoformerConfig",
    "BSRNNConfig",
    "DEFAULT_FREQS_PER_BANDS",
]
