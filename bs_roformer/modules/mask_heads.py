"""The kinds of mask estimator a band-split model can be built with, named as in splifft 0.0.9's
`mask_estimator` config (`{kind: ..., <options>}`), which is where the published variants are defined:

    baseline                 per-band MLPs (every MSST / upstream checkpoint)
    hyperace_residual_v1     + HyperACE segmentation residual (unwa BS-RoFormer HyperACE); num_hyperedges, num_heads
    hyperace_residual_v2     the same with TFC-TDF blocks, 32 hyperedges (unwa HyperACE v2); num_hyperedges, num_heads
    axial_refiner_large_v2   axial transformer refiner before the MLPs (unwa Large-Inst v2); axial_refiner_depth
"""

from functools import partial
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple, Union

from torch import nn

from .axial_refiner import AxialRefinerMaskEstimator
from .hyperace import HyperAceMaskEstimator
from .mask_estimator import MaskEstimator

MaskEstimatorSpec = Union[str, Mapping[str, Any]]

# kind -> (head class, fixed keywords, options a config may set)
MASK_ESTIMATOR_KINDS: Dict[str, Tuple[type, Dict[str, Any], Tuple[str, ...]]] = {
    "baseline": (MaskEstimator, {}, ()),
    "hyperace_residual_v1": (HyperAceMaskEstimator, dict(version=1), ("num_hyperedges", "num_heads")),
    "hyperace_residual_v2": (HyperAceMaskEstimator, dict(version=2), ("num_hyperedges", "num_heads")),
    "axial_refiner_large_v2": (AxialRefinerMaskEstimator, {}, ("axial_refiner_depth",)),
}


def mask_estimator_kind(spec: MaskEstimatorSpec) -> Tuple[str, Dict[str, Any]]:
    """(kind, options) of a `mask_estimator` setting: a kind name, or a mapping with `kind` and options."""
    options = {"kind": spec} if isinstance(spec, str) else dict(spec)
    kind = options.pop("kind", "baseline")
    if kind not in MASK_ESTIMATOR_KINDS:
        raise ValueError(f"mask_estimator kind {kind!r} is not known; choose one of {', '.join(MASK_ESTIMATOR_KINDS)}")
    allowed = MASK_ESTIMATOR_KINDS[kind][2]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        accepted = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"mask_estimator kind {kind!r} takes no option {', '.join(unknown)} (its options: {accepted})")
    return kind, {key: value for key, value in options.items() if value is not None}


def mask_estimator_factory(
    spec: MaskEstimatorSpec,
    dim: int,
    dim_inputs: Sequence[int],
    hidden_layers: int,
    mlp_expansion_factor: int,
    norm_each_band: bool = False,
) -> Callable[[], nn.Module]:
    """A function building one fresh mask estimator of the given kind: (b, t, bands, dim) -> (b, t, sum(dim_inputs))."""
    kind, options = mask_estimator_kind(spec)
    head, fixed, _ = MASK_ESTIMATOR_KINDS[kind]
    return partial(
        head, dim, tuple(dim_inputs), hidden_layers, mlp_expansion_factor, norm_each_band=norm_each_band, **fixed, **options
    )
