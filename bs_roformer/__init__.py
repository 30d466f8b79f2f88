"""bs_roformer: band-split RoPE transformers for music source separation.

The models (`BSRoformer`, ..., and their configs) need only the model core's packages (torch, einops,
beartype, rotary-embedding-torch, librosa); separating files (`load_model`, `Separator`, `read_audio`, ...)
also needs soundfile, soxr, PyYAML, tqdm and safetensors, so those names are imported on first use.
"""

import importlib

from .models import (
    BSRNN,
    BSConformer,
    BSConformerConfig,
    BSRNNConfig,
    BSRoformer,
    BSRoformerConfig,
    FrameTransformer,
    FrameTransformerV3,
    MelBandConformer,
    MelBandConformerConfig,
    MelBandRoformer,
    MelBandRoformerConfig,
)
from .modules.band_schemas import SCHEMAS, band_schema, freqs_per_bands

# name -> module it is imported from when first used
_LAZY = {
    "LoadedModel": ".inference",
    "REGISTRY": ".inference",
    "Separator": ".inference",
    "export_onnx": ".inference",
    "load_model": ".inference",
    "read_audio": ".inference",
    "read_config": ".inference",
}

__all__ = [
    "BSRoformer",
    "MelBandRoformer",
    "BSRNN",
    "BSConformer",
    "MelBandConformer",
    "BSRoformerConfig",
    "MelBandRoformerConfig",
    "BSRNNConfig",
    "BSConformerConfig",
    "MelBandConformerConfig",
    "FrameTransformer",
    "FrameTransformerV3",
    "SCHEMAS",
    "band_schema",
    "freqs_per_bands",
    *_LAZY,
]
__version__ = "0.1.0"


# subpackages that need more than the model core, imported when first used as attributes
_LAZY_SUBPACKAGES = ("inference", "training", "metrics", "cli")


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name not in _LAZY:
        raise AttributeError(f"module 'bs_roformer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
