"""The RoFormer family: a band-split model whose backbone is the axial transformer."""

from typing import Callable

import torch
from torch import nn

from ..modules.axial_transformer import AxialTransformer
from ..modules.transformer import Transformer
from .band_split_model import BandSplitModel
from .config import AxialConfig, RoformerConfig


class BandSplitRoformer(BandSplitModel):
    """BandSplitModel + axial backbone, the body shared by the RoFormers and the Conformers.

    Their settings: `AxialConfig` (the backbone's) with `RoformerConfig` or `ConformerConfig` (its stacks),
    on `BandSplitConfig` (STFT, masks, losses). A model class gives its stacks as `sequence_model`.
    """

    Config = RoformerConfig
    # BS normalises once after the axial transformer; Mel after each transformer
    norm_each_transformer = False

    def sequence_model(self, config: AxialConfig) -> Callable[..., nn.Module]:
        """The stack along each axis, called with Transformer's keywords."""
        return Transformer

    def build_backbone(self, config: AxialConfig) -> nn.Module:
        time_depth, freq_depth, linear_depth = config.axis_depths()
        shared_biases = {}
        if config.use_shared_bias:
            # top-level parameters, as in splifft's state dict; zeros in the one published checkpoint
            # (splifft initialises them to ones; zero is a bias's neutral start)
            self.shared_qkv_bias = nn.Parameter(torch.zeros(3 * config.heads * config.dim_head))
            self.shared_out_bias = nn.Parameter(torch.zeros(config.dim))
            shared_biases = dict(shared_qkv_bias=self.shared_qkv_bias, shared_out_bias=self.shared_out_bias)
        return AxialTransformer(
            dim=config.dim,
            depth=config.depth,
            time_transformer_depth=time_depth,
            freq_transformer_depth=freq_depth,
            linear_transformer_depth=linear_depth,
            dim_head=config.dim_head,
            heads=config.heads,
            attn_dropout=config.attn_dropout,
            ff_dropout=config.ff_dropout,
            flash_attn=config.flash_attn,
            linear_flash_attn=config.linear_flash_attn,
            norm_output=self.norm_each_transformer,
            value_residual=config.value_residual,
            skip_connection=config.skip_connection,
            use_torch_checkpoint=config.use_torch_checkpoint,
            use_pope=config.use_pope,
            sequence_model=self.sequence_model(config),
            **shared_biases,
        )
