"""The axial-refiner mask head of unwa's BS-RoFormer Large-Inst v2: a small axial transformer of its own
(time and frequency transformer pairs, 8 heads x 64, own rotary embeddings) and an RMSNorm refine the
features before the per-band mask MLPs. Reference: splifft 0.0.9 `AxialRefinerLargeV2MaskEstimator`.

Keys: `mask_estimators.N.to_freqs.*` (the MLPs), `mask_estimators.N.layers.<i>.<0|1>.layers.0.<0|1>.*`
(the transformer pairs, exactly the keys of our `AxialTransformer`), `mask_estimators.N.norm.gamma`.
"""

from typing import Sequence

import torch

from .axial_transformer import AxialTransformer
from .mask_estimator import MaskEstimator
from .norm import RMSNorm

# fixed by the published checkpoint, whatever the model's heads and dim_head
REFINER_HEADS = 8
REFINER_DIM_HEAD = 64


class AxialRefinerMaskEstimator(MaskEstimator):
    """(b, t, bands, dim) -> (b, t, sum(dim_inputs)): axial_refiner_depth axial transformer layers, an RMSNorm,
    then the per-band MLPs of `MaskEstimator`."""

    def __init__(
        self,
        dim: int,
        dim_inputs: Sequence[int],
        hidden_layers: int,
        mlp_expansion_factor: int = 4,
        norm_each_band: bool = False,
        *,
        axial_refiner_depth: int = 4,
    ):
        super().__init__(dim, dim_inputs, hidden_layers, mlp_expansion_factor, norm_each_band)
        self.layers = AxialTransformer(
            dim=dim,
            depth=axial_refiner_depth,
            time_transformer_depth=1,
            freq_transformer_depth=1,
            heads=REFINER_HEADS,
            dim_head=REFINER_DIM_HEAD,
            norm_output=False,
        )
        self.norm = RMSNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.norm(self.layers(x)))
