"""Checkpoints of the axial-backbone variants: PoPE attention, shared attention biases, BS-/Mel-Band
Conformer, value residual; telling them from their keys, and loading them.

compat.recognise_roformer runs its plain RoFormer inference on `backbone_view(state_dict)` and then
`apply_backbone_variant`; loading.py restores fixed PoPE frequencies with the rotary ones. The variants'
checkpoint quirks (shared biases stored once, the
conventions value-residual weights imply) are in bs_roformer.compat.
"""

import re
from collections import Counter
from functools import lru_cache
from typing import Any, Dict, FrozenSet, List

import torch
from torch import nn

from ..compat import SHARED_BIASES

StateDict = Dict[str, torch.Tensor]

# conformer blocks name their attention `attn`; the plain inference expects a transformer layer's `0`
CONFORMER_ATTENTION = re.compile(r"^(layers\.\d+\.\d+\.layers\.\d+)\.attn\.")


def is_conformer(state_dict: StateDict) -> bool:
    return any(".conv.net." in key and key.startswith("layers.") for key in state_dict)


def backbone_view(state_dict: StateDict) -> StateDict:
    """The checkpoint with each Conformer block's attention keys under a transformer layer's names."""
    if not is_conformer(state_dict):
        return state_dict
    return {CONFORMER_ATTENTION.sub(r"\1.0.", key): value for key, value in state_dict.items()}


def apply_backbone_variant(state_dict: StateDict, model_type: str, kwargs: Dict[str, Any], notes: List[str]) -> str:
    """Add the variant keywords the keys tell to `kwargs` (inferred for a plain RoFormer); return the model type."""
    keys = set(state_dict)
    if any(key.endswith(".pope_embed.bias") for key in keys):
        kwargs["use_pope"] = True
    if SHARED_BIASES.keys() <= keys:
        kwargs["use_shared_bias"] = True
    if not is_conformer(state_dict):
        return model_type

    block = next(key.rsplit(".conv.", 1)[0] for key in sorted(keys) if ".conv.net.4.weight" in key)
    dim = kwargs["dim"]
    depthwise = state_dict[f"{block}.conv.net.4.weight"].shape  # (inner, 1, kernel)
    for axis in ("time", "freq", "linear"):
        kwargs[f"{axis}_conformer_depth"] = kwargs.pop(f"{axis}_transformer_depth")
    kwargs.update(
        ff_mult=state_dict[f"{block}.ff1.ff.net.1.weight"].shape[0] // dim,
        conv_expansion_factor=depthwise[0] // dim,
        conv_kernel_size=depthwise[-1],
    )
    return "mel_band_conformer" if model_type == "mel_band_roformer" else "bs_conformer"


# --- key families: which variant a checkpoint's tensors come from ------------------------------------


def key_family(key: str) -> str:
    """The key with every index replaced by N: layers.3.1.layers.0.0.to_qkv.weight -> layers.N.N.layers.N.N.to_qkv.weight."""
    return re.sub(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)", "N", key)


def _backbone_families(model: nn.Module) -> FrozenSet[str]:
    # mask-estimator heads have recognisers of their own
    return frozenset(key_family(key) for key in model.state_dict() if not key.startswith("mask_estimators."))


@lru_cache(maxsize=1)
def known_variants() -> Dict[str, FrozenSet[str]]:
    """Variant name -> the key families of its band split and backbone (from tiny models of each)."""
    from ..models import BSConformer, BSRoformer

    # Mel models as BS ones with the Mel norms: the same key families, without a mel filter bank (librosa)
    class MelKeys(BSRoformer):
        norm_each_transformer, final_norm_after_backbone = True, False

    class MelConformerKeys(BSConformer):
        final_norm_after_backbone = False

    tiny = dict(
        dim=8, depth=2, freqs_per_bands=(16, 17), heads=1, dim_head=8, linear_transformer_depth=1,
        time_transformer_depth=1, freq_transformer_depth=1, mask_estimator_depth=2, stft_n_fft=64, stft_win_length=64,
    )
    conformer = {**{key.replace("transformer", "conformer"): value for key, value in tiny.items()},
                 "ff_mult": 2, "conv_kernel_size": 3}
    builds = {
        "bs_roformer": lambda: BSRoformer(**tiny),
        "mel_band_roformer": lambda: MelKeys(**tiny),
        "bs_roformer with value residual (bs-roformer 0.5.1)": lambda: BSRoformer(**tiny, value_residual=True),
        "bs_roformer with PoPE attention (use_pope)": lambda: BSRoformer(**tiny, use_pope=True),
        "bs_roformer with shared attention biases (use_shared_bias)": lambda: BSRoformer(**tiny, use_shared_bias=True),
        "bs_conformer": lambda: BSConformer(**conformer),
        "mel_band_conformer": lambda: MelConformerKeys(**conformer),
        # combinations no published checkpoint has but these models build (a RoFormer's are covered above)
        "bs_conformer with PoPE, shared biases and value residual": lambda: BSConformer(
            **conformer, use_pope=True, use_shared_bias=True, value_residual=True
        ),
    }
    return {name: _backbone_families(build()) for name, build in builds.items()}


def check_known_key_families(state_dict: StateDict) -> None:
    """Refuse weights whose band split / backbone holds key families no known variant has, naming them and
    the variant nearest to the checkpoint."""
    variants = known_variants()
    known = frozenset().union(*variants.values())
    families = Counter(key_family(key) for key in state_dict if not key.startswith("mask_estimators."))
    unknown = {family: count for family, count in families.items() if family not in known}
    if not unknown:
        return
    present = set(families)
    nearest = max(variants, key=lambda name: len(variants[name] & present) / len(variants[name] | present))
    listed = "\n".join(f"    {count:4d} x {family}" for family, count in sorted(unknown.items())[:8])
    more = f"\n    ... and {len(unknown) - 8} more families" if len(unknown) > 8 else ""
    raise ValueError(
        f"these weights hold tensors of no architecture bs_roformer knows:\n{listed}{more}\n"
        f"  the nearest known variant is {nearest}; the checkpoint is a variant of it that is not supported"
    )
