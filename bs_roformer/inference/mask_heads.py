"""Telling a checkpoint's mask head from its keys: the families under `mask_estimators.N.` name the kind
(`bs_roformer.modules.mask_heads`), their shapes its options."""

import re
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Tuple

import torch

from ..compat import Inferred, recognise_roformer
from ..modules.axial_refiner import REFINER_DIM_HEAD, REFINER_HEADS

# key families under mask_estimators.N -> the head they make
KNOWN_HEADS: Dict[FrozenSet[str], str] = {
    frozenset({"to_freqs"}): "baseline (per-band MLPs)",
    frozenset({"to_freqs", "segm"}): "hyperace_residual_v1 / hyperace_residual_v2 (unwa HyperACE)",
    frozenset({"to_freqs", "layers", "norm"}): "axial_refiner_large_v2 (unwa Large-Inst v2)",
}
# modules of neuraloperator's FNO, which unwa's Inst-FNO puts in place of the mask MLPs
FNO_FAMILIES = ("fno_blocks", "lifting", "projection")
HYPEREDGE_PROTOTYPES = "segm.hyperace.high_order_branch.0.ahc.adaptive_hyperedge_gen.global_proto"


def infer_mask_estimator(state_dict: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, Any], List[str]]:
    """(model keywords, notes) for the checkpoint's mask heads: {} for the per-band MLPs, else `mask_estimator`
    and the conventions of the head's reference. Unknown heads are an error naming their key families."""
    first_head = (re.fullmatch(r"mask_estimators\.0\.(.+)", key) for key in state_dict)
    head_keys = {m[1]: state_dict[m[0]] for m in first_head if m}
    families = frozenset(key.split(".")[0] for key in head_keys)
    fno = sorted({family for key in head_keys for family in FNO_FAMILIES if f".{family}." in f".{key}"})
    if fno:
        raise ValueError(
            f"these mask estimators hold Fourier neural operator weights ({', '.join(fno)} under mask_estimators.N): "
            "unwa's Inst-FNO head, whose definition is not public, is not supported. "
            f"Supported heads: {'; '.join(KNOWN_HEADS.values())}"
        )
    if families == {"to_freqs"} or not families:
        return {}, []
    if families == {"to_freqs", "segm"}:
        version = 2 if any(key.startswith("segm.upsample_head.block1.out_conv.") for key in head_keys) else 1
        spec = dict(kind=f"hyperace_residual_v{version}", num_hyperedges=head_keys[HYPEREDGE_PROTOTYPES].shape[0])
        notes = ["mask_estimator num_heads=8 assumed (the HyperACE hyperedge heads are not in the weights)"]
    elif families == {"to_freqs", "layers", "norm"}:
        heads = head_keys["layers.0.0.layers.0.0.to_gates.weight"].shape[0]
        dim_head = head_keys["layers.0.0.layers.0.0.to_qkv.weight"].shape[0] // (3 * heads)
        if (heads, dim_head) != (REFINER_HEADS, REFINER_DIM_HEAD):
            raise ValueError(
                f"the mask estimators' axial refiner has {heads} heads x {dim_head}; only the published Large-Inst v2 "
                f"head ({REFINER_HEADS} x {REFINER_DIM_HEAD}) is supported"
            )
        depth = 1 + max(int(key.split(".")[1]) for key in head_keys if key.startswith("layers."))
        spec = dict(kind="axial_refiner_large_v2", axial_refiner_depth=depth)
        notes = []
    else:
        nearest = max(KNOWN_HEADS, key=lambda known: (len(known & families) / len(known | families), -len(known)))
        raise ValueError(
            f"the mask estimators have key families no known head has: mask_estimators.N.{{{_family_list(families - nearest)}}} "
            f"(all: {_family_list(families)}). Nearest known head: {KNOWN_HEADS[nearest]}, with "
            f"{_family_list(nearest)}. Known heads: {'; '.join(KNOWN_HEADS.values())}"
        )
    # COMPAT: the reference (splifft 0.0.9) runs these heads' checkpoints without zeroing the DC bin
    notes.append(f"mask_estimator {spec['kind']} recognised by its keys; zero_dc off, as its reference (splifft) runs it")
    return dict(mask_estimator=spec, zero_dc=False), notes


def recognise_roformer_with_mask_head(state_dict: Mapping[str, torch.Tensor]) -> Optional[Inferred]:
    """A RoFormer whose mask estimators are a variant head: the RoFormer's settings, the head's and its
    conventions. None for the per-band MLPs; an error for a head not supported (Inst-FNO, unknown)."""
    settings, notes = infer_mask_estimator(state_dict)
    inferred = recognise_roformer(state_dict) if settings else None
    if inferred is None:
        return None
    # the head's reference conventions replace the plain RoFormer's (its note said zero_dc on)
    inferred.notes = [note for note in inferred.notes if not note.startswith("zero_dc on")] + notes
    inferred.settings.update(settings)
    return inferred


def with_checkpoint_mask_estimator(
    config: Dict[str, Any], state_dict: Mapping[str, torch.Tensor], notes: List[str]
) -> Dict[str, Any]:
    """A YAML config with the checkpoint's mask head where the YAML names none (unwa's MSST configs describe
    a plain BS-RoFormer; his model files add the head), and the head's conventions where the YAML leaves
    them out. A YAML's own settings win."""
    model = config["model"]
    if "mask_estimator" in model or not any(key.startswith("mask_estimators.0.") for key in state_dict):
        return config
    settings, head_notes = infer_mask_estimator(state_dict)
    notes.extend(head_notes)
    return {**config, "model": {**settings, **model}}


def _family_list(families) -> str:
    return ", ".join(sorted(families)) or "none"
