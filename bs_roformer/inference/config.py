"""Configs in the Music-Source-Separation-Training (MSST) YAML format, and building models from them.

An MSST config has four sections: `audio` (chunk_size, sample_rate, ...), `model` (constructor keywords),
`training` (instruments, target_instrument, ...) and `inference` (batch_size, num_overlap, dim_t,
normalize). Our model defaults are MSST's, so the `model` section builds the model's typed config as is
(`Config.from_msst`: unknown keys and wrong types fail there, naming the key); only settings that do not
change the weights and that we do not implement are dropped, with a warning (bs_roformer.compat).
"""

import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml
from beartype.door import is_bearable

from ..compat import IGNORED_MSST_MODEL_KEYS
from ..models import BSRNN, BSConformer, BSRoformer, MelBandConformer, MelBandRoformer
from ..models.config import TYPE_CHECKS, hint_name

# model type -> model class; each class has a typed `Config` (see bs_roformer.models.config)
MODEL_TYPES = {
    "bs_roformer": BSRoformer,
    "mel_band_roformer": MelBandRoformer,
    "bsrnn": BSRNN,
    "bs_conformer": BSConformer,
    "mel_band_conformer": MelBandConformer,
}

IGNORED_MODEL_KEYS = IGNORED_MSST_MODEL_KEYS  # the list lives in bs_roformer.compat

# the types of the audio / inference settings we read (None: the default), checked once when a config is read
SETTING_TYPES = {
    "audio": {"sample_rate": Optional[int], "chunk_size": Optional[int]},
    "inference": {
        "batch_size": Optional[int],
        "num_overlap": Optional[int],
        "chunk_size": Optional[int],
        "dim_t": Optional[int],
        "normalize": Optional[bool],
    },
}


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader that also reads `!!python/tuple`, which MSST configs use; nothing else is constructed."""


ConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node, deep=True))
)


def read_config(source: Union[str, Path, Dict[str, Any]]) -> Dict[str, Any]:
    """Parse an MSST YAML config (a path, or an already parsed dict) into a dict with its four sections."""
    if isinstance(source, dict):
        config = copy.deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            config = yaml.load(path.read_text(encoding="utf-8"), Loader=ConfigLoader)
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not a readable YAML config: {error}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"{source} is not an MSST config: it needs a `model:` section with the model's settings")
    where = "the config" if isinstance(source, dict) else str(source)
    for section in ("audio", "training", "inference"):
        config.setdefault(section, {})
        if config[section] is None:
            config[section] = {}
        if not isinstance(config[section], dict):
            raise ValueError(f"{where}: the {section} section must be a mapping, got {config[section]!r}")
        for key, hint in SETTING_TYPES.get(section, {}).items():
            value = config[section].get(key)
            if not is_bearable(value, hint, conf=TYPE_CHECKS):
                raise ValueError(f"{where}: {section}.{key} must be {hint_name(hint)}, got {value!r} ({type(value).__name__})")
    return config


def model_type_of(config: Dict[str, Any], model_type: Optional[str] = None) -> str:
    """The model type: given, or `training.model_type`, or told by the model keywords."""
    model_type = model_type or config["training"].get("model_type")
    if model_type is None:
        family = "conformer" if "time_conformer_depth" in config["model"] else "roformer"
        model_type = ("mel_band_" if "num_bands" in config["model"] else "bs_") + family
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model type {model_type!r} is not supported; choose one of {sorted(MODEL_TYPES)}")
    return model_type


def model_from_config(config: Dict[str, Any], model_type: Optional[str] = None):
    """Build the model the config describes (untrained)."""
    model_class = MODEL_TYPES[model_type_of(config, model_type)]
    return model_class.from_config(model_class.Config.from_msst(config["model"]))


def stem_names(config: Dict[str, Any], num_stems: int) -> List[str]:
    """Names of the model's outputs, in order.

    MSST single-target models (`training.target_instrument`) output only the target; otherwise the outputs
    are `training.instruments` in order.
    """
    training = config["training"]
    target = training.get("target_instrument")
    if target and num_stems == 1:
        return [target]
    instruments = list(training.get("instruments") or [])
    if len(instruments) == num_stems:
        return [str(name) for name in instruments]
    return ["stem"] if num_stems == 1 else [f"stem_{index}" for index in range(num_stems)]


def chunk_size_of(config: Dict[str, Any], hop_length: int) -> Optional[int]:
    """Chunk length in samples: inference.chunk_size, else audio.chunk_size, else from inference.dim_t."""
    inference, audio = config["inference"], config["audio"]
    if inference.get("chunk_size"):
        return int(inference["chunk_size"])
    if audio.get("chunk_size"):
        return int(audio["chunk_size"])
    if inference.get("dim_t"):
        return hop_length * (int(inference["dim_t"]) - 1)
    return None
