"""Reading checkpoints safely, and telling a model's architecture from its tensors (rules: bs_roformer.compat).

Checkpoints met in the wild: a raw state dict; {'state_dict': ...}, {'state': ...}, {'model': ...};
{'model_state_dict': ..., 'optimizer_state_dict': ..., 'epoch': ...} from MSST training; `module.`
(DataParallel) and `_orig_mod.` (torch.compile) prefixes; fp16 weights; `.safetensors`. Nothing is
unpickled beyond tensors and plain containers (`torch.load(weights_only=True)`).
"""

import pickle
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import torch

from ..compat import StateDict, infer_architecture

CONTAINER_KEYS = ("state_dict", "model_state_dict", "state", "model", "module")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path) -> StateDict:
    """The model weights stored in a checkpoint file, unwrapped and with wrapper prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _strip_prefixes(load_file(str(path)))
        except SafetensorError as error:
            raise ValueError(f"{path} is not a readable .safetensors file (truncated or corrupt?): {error}") from None
    with open(path, "rb") as file:
        start = file.read(4)
    # torch.save writes a zip archive (since torch 1.6) or a pickle (protocol 2+, first byte 0x80)
    if not (start.startswith(b"PK\x03\x04") or start.startswith(b"\x80")):
        raise ValueError(f"{path} is not a PyTorch checkpoint: it starts with {start!r}, not a zip archive or a pickle "
                         "(a text or HTML page saved under a checkpoint's name?)")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} stores Python objects besides tensors, and loading it would run arbitrary code, so it is "
            f"refused ({str(error).splitlines()[0]}). If you trust the file, re-save its weights: "
            f"torch.save(torch.load(path, weights_only=False)['state_dict'], 'weights.ckpt')"
        ) from None
    except (RuntimeError, EOFError, KeyError) as error:
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


def infer_config(state_dict: StateDict) -> Tuple[str, Dict[str, Any], List[str]]:
    """(model_type, MSST model section, notes on what could not be inferred and was assumed).

    The rules per model family live in `bs_roformer.compat` (`RECOGNISERS`).
    """
    inferred = infer_architecture(state_dict)
    return inferred.model_type, inferred.settings, inferred.notes
