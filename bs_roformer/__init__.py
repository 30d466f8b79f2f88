"""bs_roformer: band-split RoPE transformers for music source separation."""

from .inference import REGISTRY, LoadedModel, Separator, load_model, read_audio, read_config
from .models import BSRNN, BSConformer, BSRoformer, MelBandConformer, MelBandRoformer
from .modules.band_schemas import SCHEMAS, band_schema, freqs_per_bands

__all__ = [
    "BSRoformer",
    "MelBandRoformer",
    "BSRNN",
    "BSConformer",
    "MelBandConformer",
    "SCHEMAS",
    "band_schema",
    "freqs_per_bands",
    "LoadedModel",
    "REGISTRY",
    "Separator",
    "load_model",
    "read_audio",
    "read_config",
]
__version__ = "0.1.0"
