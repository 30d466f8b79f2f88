"""bs_roformer: band-split RoPE transformers for music source separation."""

from .inference import REGISTRY, LoadedModel, Separator, export_onnx, load_model, read_audio, read_config
from .models import BSRNN, BSRoformer, MelBandRoformer
from .modules.band_schemas import SCHEMAS, band_schema, freqs_per_bands

__all__ = [
    "BSRoformer",
    "MelBandRoformer",
    "BSRNN",
    "SCHEMAS",
    "band_schema",
    "freqs_per_bands",
    "LoadedModel",
    "REGISTRY",
    "Separator",
    "export_onnx",
    "load_model",
    "read_audio",
    "read_config",
]
__version__ = "0.1.0"
