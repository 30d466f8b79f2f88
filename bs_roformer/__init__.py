"""bs_roformer: band-split RoPE transformers for music source separation."""

from .inference import REGISTRY, LoadedModel, Separator, load_model, read_audio, read_config
from .models import BSRoformer, MelBandRoformer

__all__ = ["BSRoformer", "MelBandRoformer", "LoadedModel", "REGISTRY", "Separator", "load_model", "read_audio", "read_config"]
__version__ = "0.1.0"
