"""Reading checkpoints safely, and telling a model's architecture from its tensors.

Checkpoints met in the wild: a raw state dict; {'state_dict': ...}, {'state': ...}, {'model': ...};
{'model_state_dict': ..., 'optimizer_state_dict': ..., 'epoch': ...} from MSST training; `module.`
(DataParallel) and `_orig_mod.` (torch.compile) prefixes; fp16 weights; `.safetensors`. Nothing is
unpickled beyond tensors and plain containers (`torch.load(weights_only=True)`).
"""

import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ..modules.bands import mel_band_membership
from . import backbone_variants
from .mask_heads import infer_mask_estimator

StateDict = Dict[str, torch.Tensor]

CONTAINER_KEYS = ("state_dict", "model_state_dict", "state", "model", "module")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path) -> StateDict:
    """The model weights stored in a checkpoint file, unwrapped and with wrapper prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return _strip_prefixes(load_file(str(path)))
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} stores Python objects besides tensors, and loading it would run arbitrary code, so it is "
            f"refused ({str(error).splitlines()[0]}). If you trust the file, re-save its weights: "
            f"torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.ckpt')"
        ) from None
    except (RuntimeError, EOFError) as error:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {error}") from None
    return _strip_prefixes(_unwrap(content, path))


def _unwrap(content: Any, path: Path) -> StateDict:
    while isinstance(content, Mapping) and not _is_state_dict(content):
        inner = next((content[key] for key in CONTAINER_KEYS if isinstance(content.get(key), Mapping)), None)
        if inner is None:
            raise ValueError(
                f"{path} holds no model weights that bs_roformer recognises: its top-level keys are "
                f"{sorted(map(str, content))[:10]}; expected a state dict or one under {list(CONTAINER_KEYS)}"
            )
        content = inner
    if not isinstance(content, Mapping):
        raise ValueError(f"{path} holds a {type(content).__name__}, not a state dict")
    return dict(content)


def _is_state_dict(content: Mapping) -> bool:
    return len(content) > 0 and all(torch.is_tensor(value) for value in content.values())


def _strip_prefixes(state_dict: StateDict) -> StateDict:
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(key.startswith(prefix) for key in state_dict):
            state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


# --- telling the architecture from the tensors -------------------------------------------------------

# nothing in the weights tells the hop: published checkpoints nearly all use n_fft 2048 with a 441-sample
# hop at 44.1 kHz (10 ms); for other sizes, a quarter window
ASSUMED_SAMPLE_RATE = 44100


def assumed_hop(n_fft: int) -> int:
    return 441 if n_fft == 2048 else n_fft // 4


def infer_config(state_dict: StateDict) -> Tuple[str, Dict[str, Any], List[str]]:
    """(model_type, constructor keywords, notes on what could not be inferred and was assumed)."""
    original = state_dict
    state_dict = backbone_variants.backbone_view(state_dict)
    keys = set(state_dict)
    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    if "band_split.to_features.0.1.weight" not in keys or not any(k.startswith("layers.0.") for k in keys):
        raise ValueError("these weights are not a BS-RoFormer or Mel-Band RoFormer (no band_split / layers tensors)")
    backbone_variants.check_known_key_families(original)

    head_settings, head_notes = infer_mask_estimator(original)  # HyperACE, axial refiner, ...
    model_type = "bs_roformer" if "final_norm.gamma" in keys else "mel_band_roformer"
    dim = shape("band_split.to_features.0.1.weight")[0]
    depth = 1 + max(int(key.split(".")[1]) for key in keys if key.startswith("layers."))
    band_inputs = _indexed_shapes(state_dict, r"band_split\.to_features\.(\d+)\.0\.gamma")
    num_stems = len(_indexed_shapes(state_dict, r"mask_estimators\.(\d+)\.to_freqs\.0\.0\.0\.weight"))

    # each axial block: [linear transformer (has a temperature),] time, frequency
    transformers = sorted({int(k.split(".")[2]) for k in keys if k.startswith("layers.0.")})
    linear = [t for t in transformers if f"layers.0.{t}.layers.0.0.temperature" in keys]
    time_index, freq_index = [t for t in transformers if t not in linear][:2]
    layer_count = lambda t: len({k.split(".")[4] for k in keys if k.startswith(f"layers.0.{t}.layers.")})  # noqa: E731
    attention = f"layers.0.{time_index}.layers.0.0"
    heads = shape(f"{attention}.to_gates.weight")[0]
    dim_head = shape(f"{attention}.to_qkv.weight")[0] // (3 * heads)

    mask_linears = sorted(
        int(m.group(1))
        for key in keys
        if (m := re.fullmatch(r"mask_estimators\.0\.to_freqs\.0\.0\.(\d+)\.weight", key))
    )
    hidden_layers = len(mask_linears) - 1
    kwargs: Dict[str, Any] = dict(
        dim=dim,
        depth=depth,
        num_stems=num_stems,
        time_transformer_depth=layer_count(time_index),
        freq_transformer_depth=layer_count(freq_index),
        linear_transformer_depth=layer_count(linear[0]) if linear else 0,
        heads=heads,
        dim_head=dim_head,
        value_residual=any(".to_value_residual_mix." in key for key in keys),
        # COMPAT: the BS file builds mask_estimator_depth - 1 hidden layers, the Mel file mask_estimator_depth
        mask_estimator_depth=hidden_layers + 1 if model_type == "bs_roformer" else hidden_layers,
    )
    if hidden_layers:
        kwargs["mlp_expansion_factor"] = shape("mask_estimators.0.to_freqs.0.0.0.weight")[0] // dim

    notes = list(head_notes)
    kwargs.update(head_settings)
    stereo, n_fft, band_settings = _infer_bands(model_type, band_inputs)
    kwargs.update(stereo=stereo, stft_n_fft=n_fft, stft_win_length=n_fft, **band_settings)
    if kwargs["value_residual"]:
        # only upstream bs-roformer 0.5.x has value residual: use its iSTFT conventions
        kwargs.update(zero_dc=False, match_input_audio_length=False)
        notes.append("value-residual weights: treated as upstream bs-roformer 0.5.x (zero_dc off, length not restored)")
    elif "zero_dc" not in head_settings:  # a mask head's own conventions come with their note
        notes.append("zero_dc on and input length restored, as in Music-Source-Separation-Training (not in the weights)")
    kwargs["stft_hop_length"] = assumed_hop(n_fft)
    notes.append(f"stft_hop_length={kwargs['stft_hop_length']} assumed (not in the weights)")
    notes.append("skip_connection=False assumed (it has no weights)")
    model_type = backbone_variants.apply_backbone_variant(original, model_type, kwargs, notes)
    if "sample_rate" not in kwargs:
        kwargs["sample_rate"] = ASSUMED_SAMPLE_RATE
        notes.append(f"sample_rate={ASSUMED_SAMPLE_RATE} assumed (not in the weights)")
    return model_type, kwargs, notes


def _indexed_shapes(state_dict: StateDict, pattern: str) -> List[Tuple[int, ...]]:
    found = {int(m.group(1)): tuple(v.shape) for k, v in state_dict.items() if (m := re.fullmatch(pattern, k))}
    return [found[index] for index in sorted(found)]


def _infer_bands(model_type: str, band_inputs: List[Tuple[int, ...]]) -> Tuple[bool, int, Dict[str, Any]]:
    """(stereo, n_fft, band keywords) from each band's input width = 2 (re/im) x channels x bins."""
    widths = [shape[0] for shape in band_inputs]
    for channels in (2, 1):
        if any(width % (2 * channels) for width in widths):
            continue
        bins = [width // (2 * channels) for width in widths]
        if model_type == "bs_roformer":
            n_fft = 2 * (sum(bins) - 1)
            if n_fft >= 2 and n_fft & (n_fft - 1) == 0:  # the STFT sizes in use are powers of two
                return channels == 2, n_fft, dict(freqs_per_bands=tuple(bins))
        else:
            for n_fft in (2048, 4096, 1024, 8192, 512, 256, 16384):
                for sample_rate in (44100, 48000, 32000, 22050, 16000):
                    try:
                        membership = mel_band_membership(sample_rate, n_fft, len(bins))
                    except ValueError:  # this many bands leave bins uncovered at this size
                        continue
                    if membership.sum(dim=1).tolist() == bins:
                        return channels == 2, n_fft, dict(num_bands=len(bins), sample_rate=sample_rate)
    raise ValueError(f"cannot tell the STFT size and channel count from band input widths {Counter(widths)}")
