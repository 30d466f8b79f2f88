"""`load_model`: a ready-to-use model from a registry name, a checkpoint, or a config plus a checkpoint."""

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
import yaml
from torch import nn

from ..compat import renumber_empty_linear_slot, with_lineage_conventions, with_shared_biases
from ..modules.pope import pope_inverse_frequencies
from ..modules.rotary import RotaryFrequencies
from .checkpoint import StateDict, infer_config, read_state_dict
from .config import chunk_size_of, model_from_config, model_type_of, read_config, stem_names
from .mask_heads import with_checkpoint_mask_estimator
from .registry import DEFAULT_MODEL, fetch_model, registered, suggestions

PathLike = Union[str, Path]
# rotary-frequency constants: rotary-embedding-torch's (RoFormers) and frame-transformer's own buffers
ROTARY_KEYS = ("rotary_embed.freqs", "rotary_embedding.freqs")


@dataclass
class LoadedModel:
    """A model with weights, and what separating with it needs to know.

    config is in the Music-Source-Separation-Training format (audio / model / training / inference);
    notes lists what could not be read from the config or checkpoint and was assumed.
    """

    model: nn.Module
    model_type: str
    config: Dict[str, Any]
    stems: List[str]
    source: str
    notes: List[str] = field(default_factory=list)

    @property
    def sample_rate(self) -> int:
        return int(self.config["audio"].get("sample_rate") or getattr(self.model, "sample_rate", 44100))

    @property
    def audio_channels(self) -> int:
        return self.model.audio_channels

    @property
    def chunk_size(self) -> int:
        """Samples per chunk for chunked inference (config, else 8 s)."""
        return chunk_size_of(self.config, self.model.stft_hop_length) or 8 * self.sample_rate

    @property
    def num_overlap(self) -> int:
        return int(self.config["inference"].get("num_overlap") or 2)

    @property
    def batch_size(self) -> int:
        return int(self.config["inference"].get("batch_size") or 1)

    @property
    def normalize(self) -> bool:
        return bool(self.config["inference"].get("normalize", False))

    @property
    def instruments(self) -> List[str]:
        """Every instrument the config names (the model's outputs, plus the complement of a single target)."""
        return [str(name) for name in self.config["training"].get("instruments") or self.stems]


def load_model(
    model: Optional[PathLike] = None,
    *,
    config: Optional[Union[PathLike, Dict[str, Any]]] = None,
    model_type: Optional[str] = None,
    cache: Optional[PathLike] = None,
    progress: bool = True,
    model_overrides: Optional[Dict[str, Any]] = None,
) -> LoadedModel:
    """Build a model and load its weights.

    model: a registry name (see `bs_roformer.REGISTRY`; default: the ZFTurbo 4-stem BS-RoFormer), or a
        checkpoint file (.ckpt/.pt/.pth/.safetensors).
    config: an MSST YAML config (path or dict). Without one, a registry model uses its shipped config and a
        checkpoint file is inspected to infer the architecture (what cannot be inferred is listed in notes).
    model_type: bs_roformer or mel_band_roformer, when the config does not say.
    cache: where registry checkpoints are downloaded (default: $BS_ROFORMER_CACHE or ~/.cache/bs_roformer).
    model_overrides: model keywords replacing the config's or the inferred ones (e.g. settings the weights
        do not show, such as a frame-transformer's hop).
    """
    model = DEFAULT_MODEL if model is None else model
    entry = None if Path(model).exists() else registered(str(model))
    if entry is not None:
        checkpoint, entry_config = fetch_model(entry, cache, progress=progress, with_config=config is None)
        config = entry_config if config is None else config
        source = entry.name
    else:
        check_model_name(model)
        checkpoint = Path(model)
        source = str(checkpoint)

    state_dict = read_state_dict(checkpoint)
    notes: List[str] = []
    if config is None:
        inferred_type, model_section, notes = infer_config(state_dict)
        parsed = read_config({"model": model_section, "training": {"model_type": model_type or inferred_type}})
    else:
        parsed = with_lineage_conventions(read_config(config), state_dict, notes)
        parsed = with_checkpoint_mask_estimator(parsed, state_dict, notes)
        if model_type is None and entry is not None and not parsed["training"].get("model_type"):
            model_type = entry.architecture  # a downloaded config that does not say: the registry does
    parsed["model"].update(model_overrides or {})
    kind = model_type_of(parsed, model_type)
    network = model_from_config(parsed, kind)
    load_weights(network, state_dict)
    network.eval()
    return LoadedModel(
        model=network,
        model_type=kind,
        config=parsed,
        # a model with fixed outputs names them itself (frame-transformer: vocals, instruments)
        stems=list(getattr(network, "stem_names", None) or stem_names(parsed, network.num_stems)),
        source=source,
        notes=notes,
    )


def check_model_name(model: PathLike) -> None:
    """Raise FileNotFoundError (with the registered names closest to it) unless `model` is a checkpoint file
    or a registered name."""
    if Path(model).exists() or registered(str(model)) is not None:
        return
    close = suggestions(str(model))
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise FileNotFoundError(f"{model} is neither a checkpoint file nor a registered model; {hint}"
                            "`bs-roformer models` lists the registered models")


def load_weights(model: nn.Module, state_dict: StateDict) -> None:
    """Strictly load `state_dict`; on any mismatch, one error that summarises it and suggests a config."""
    state_dict = with_shared_biases(model, _with_shared_rotary(model, renumber_empty_linear_slot(model, state_dict)))
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    reshaped = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(expected[key].shape)}"
        for key in expected
        if key in state_dict and state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or reshaped:
        raise ValueError(_mismatch_report(model, state_dict, missing, unexpected, reshaped))
    model.load_state_dict(state_dict, strict=True)
    _restore_exact_position_frequencies(model, state_dict)


def load_fitting_weights(model: nn.Module, state_dict: StateDict) -> List[str]:
    """Load every weight whose name and shape fit `model` (fine-tuning); the rest stays as initialised.

    Returns the top-level modules left (partly) as initialised, e.g. mask_estimators for other stems.
    """
    renamed = renumber_empty_linear_slot(model, state_dict)
    expected = model.state_dict()
    candidates = with_shared_biases(model, _with_shared_rotary(model, renamed))
    fitting = {key: value for key, value in candidates.items() if key in expected and value.shape == expected[key].shape}
    if not fitting.keys() & renamed.keys():  # the model's own rotary constants do not count
        raise ValueError("no weight of the checkpoint fits this model: is it a checkpoint of the same model type and size?")
    model.load_state_dict(fitting, strict=False)
    _restore_exact_position_frequencies(model, fitting)
    return sorted({key.split(".")[0] for key in expected if key not in fitting})


def _with_shared_rotary(model: nn.Module, state_dict: StateDict) -> StateDict:
    """The checkpoint, with every rotary-frequency name of the model present."""
    # rotary frequencies are constants shared by every attention of an axis: a checkpoint saved with
    # safetensors' save_model keeps them under one name only, so take the others from the model
    rotary = {key: value for key, value in model.state_dict().items() if key.endswith(ROTARY_KEYS)}
    return {**rotary, **state_dict}


def _restore_exact_position_frequencies(model: nn.Module, state_dict: StateDict) -> None:
    """Rotary and PoPE frequencies are fixed, never trained; an fp16 checkpoint rounds them (by up to 0.05 %,
    i.e. whole radians at frame 800), so recompute them exactly."""
    _restore_exact_rotary_frequencies(model, state_dict)
    _restore_exact_pope_frequencies(model, state_dict)


def _restore_exact_rotary_frequencies(model: nn.Module, state_dict: StateDict) -> None:
    if not any(key.endswith(ROTARY_KEYS) and value.dtype in (torch.float16, torch.bfloat16)
               for key, value in state_dict.items()):
        return
    for module in model.modules():
        rotary = getattr(module, "rotary_embed", None)
        if rotary is not None:
            fresh = type(rotary)(dim=2 * rotary.freqs.numel()).freqs
            with torch.no_grad():
                rotary.freqs.copy_(fresh.to(rotary.freqs.device))
        if isinstance(module, RotaryFrequencies):  # frame-transformer's buffers
            module.freqs.copy_(module.exact().to(module.freqs.device))


def _restore_exact_pope_frequencies(model: nn.Module, state_dict: StateDict) -> None:
    """Only where the stored values are the default frequencies rounded (others are kept as stored)."""
    for name, module in model.named_modules():
        inv_freqs = getattr(module, "inv_freqs", None)
        stored = state_dict.get(f"{name}.inv_freqs" if name else "inv_freqs")
        if inv_freqs is None or stored is None or stored.dtype not in (torch.float16, torch.bfloat16):
            continue
        exact = pope_inverse_frequencies(inv_freqs.numel())
        if torch.equal(stored.cpu(), exact.to(stored.dtype)):
            with torch.no_grad():
                inv_freqs.copy_(exact.to(inv_freqs.device))


def _key_patterns(keys: List[str], limit: int = 4) -> str:
    patterns = Counter(re.sub(r"\.\d+(?=\.|$)", ".*", key) for key in keys)
    lines = [f"    {count:4d} x {pattern}" for pattern, count in patterns.most_common(limit)]
    if len(patterns) > limit:
        lines.append(f"    ... and {len(patterns) - limit} more patterns")
    return "\n".join(lines)


def _mismatch_report(model, state_dict, missing, unexpected, reshaped) -> str:
    lines = [f"the checkpoint does not fit the {type(model).__name__} built from the config:"]
    if missing:
        lines += [f"  {len(missing)} weights the model has but the checkpoint lacks:", _key_patterns(missing)]
    if unexpected:
        lines += [f"  {len(unexpected)} weights in the checkpoint the model does not have:", _key_patterns(unexpected)]
    if reshaped:
        lines += [f"  {len(reshaped)} weights with other shapes:"] + [f"    {line}" for line in reshaped[:4]]
    try:
        model_type, suggestion, _ = infer_config(state_dict)
    except ValueError as error:
        lines.append(f"  (the checkpoint's architecture could not be inferred either: {error})")
    else:
        lines.append(f"  the checkpoint looks like this {model_type} model section:")
        lines += _packed([f"{key}: {_shown(value)}" for key, value in suggestion.items()])
        lines.append("  (or load the checkpoint without a config and the architecture is inferred)")
    return "\n".join(lines)


def _packed(items: List[str], width: int = 100) -> List[str]:
    """Comma-separated items on as few indented lines as fit, no item split."""
    lines = [""]
    for item in items:
        if lines[-1] and len(lines[-1]) + len(item) + 2 > width:
            lines.append("")
        lines[-1] += f", {item}" if lines[-1] else item
    return ["    " + line for line in lines]


def _shown(value: Any) -> str:
    """A setting as the report shows it (YAML scalars; long lists like freqs_per_bands as runs:
    `62 bands (2 x 24, 4 x 12, ...)`)."""
    if not isinstance(value, (list, tuple)):
        return yaml.safe_dump(value, default_flow_style=True).splitlines()[0]
    if len(value) <= 8:
        return f"[{', '.join(map(str, value))}]"
    runs: List[List[Any]] = []
    for item in value:
        if runs and runs[-1][0] == item:
            runs[-1][1] += 1
        else:
            runs.append([item, 1])
    return f"{len(value)} bands ({', '.join(f'{item} x {count}' if count > 1 else str(item) for item, count in runs)})"

