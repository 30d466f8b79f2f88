"""Axial transformer over band features: attention across time within each band, then across bands
within each frame (BS-RoFormer, Lu et al. 2023; axial attention, Ho et al. 2019)."""

from typing import List, Optional

import torch
from einops import pack, rearrange, unpack
from rotary_embedding_torch import RotaryEmbedding
from torch import nn

from .checkpointing import maybe_checkpoint
from .transformer import Transformer


class AxialBlock(nn.ModuleList):
    """One layer: [linear transformer over all tokens,] time transformer, frequency transformer.

    A ModuleList, so the state-dict keys are the reference's `layers.<i>.<0|1|2>...`.
    """

    @property
    def linear(self) -> Optional[Transformer]:
        return self[0] if len(self) == 3 else None

    @property
    def time(self) -> Transformer:
        return self[-2]

    @property
    def freq(self) -> Transformer:
        return self[-1]


class AxialTransformer(nn.ModuleList):
    """`depth` axial blocks: (b, t, bands, dim) -> (b, t, bands, dim).

    value_residual: every attention after the first block mixes in the values of the first block's first
        attention, per axis (value residual learning, as in upstream bs-roformer 0.5.x).
    skip_connection: before each block's time transformer, add the outputs of all previous blocks
        (Music-Source-Separation-Training).
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        time_transformer_depth: int,
        freq_transformer_depth: int,
        linear_transformer_depth: int = 0,
        dim_head: int = 64,
        heads: int = 8,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        flash_attn: bool = True,
        linear_flash_attn: Optional[bool] = None,
        norm_output: bool = False,
        value_residual: bool = False,
        skip_connection: bool = False,
        use_torch_checkpoint: bool = False,
    ):
        super().__init__()
        self.value_residual = value_residual
        self.skip_connection = skip_connection
        self.use_torch_checkpoint = use_torch_checkpoint

        common = dict(
            dim=dim,
            dim_head=dim_head,
            heads=heads,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            norm_output=norm_output,
        )
        linear_flash_attn = flash_attn if linear_flash_attn is None else linear_flash_attn
        time_rotary_embed = RotaryEmbedding(dim=dim_head)
        freq_rotary_embed = RotaryEmbedding(dim=dim_head)

        for layer_index in range(depth):
            mix_values = value_residual and layer_index > 0
            transformers = []
            if linear_transformer_depth > 0:
                transformers.append(
                    Transformer(depth=linear_transformer_depth, linear_attn=True, flash_attn=linear_flash_attn, **common)
                )
            for axis_depth, rotary_embed in (
                (time_transformer_depth, time_rotary_embed),
                (freq_transformer_depth, freq_rotary_embed),
            ):
                transformers.append(
                    Transformer(
                        depth=axis_depth,
                        rotary_embed=rotary_embed,
                        flash_attn=flash_attn,
                        value_residual_mix=mix_values,
                        **common,
                    )
                )
            self.append(AxialBlock(transformers))

    def _along(self, axis: str, transformer: Transformer, x: torch.Tensor, value_residual: Optional[torch.Tensor]):
        """Run `transformer` along the time ("t") or band ("f") axis of x (b, t, f, d)."""
        if axis == "t":
            x = rearrange(x, "b t f d -> b f t d")
        x, packed_shape = pack([x], "* n d")
        x, values = maybe_checkpoint(self.use_torch_checkpoint, transformer, x, value_residual)
        (x,) = unpack(x, packed_shape, "* n d")
        if axis == "t":
            x = rearrange(x, "b f t d -> b t f d")
        return x, values

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time_values = freq_values = None
        block_outputs: List[torch.Tensor] = []

        for block in self:
            if block.linear is not None:
                x, packed_shape = pack([x], "b * d")
                x, _ = maybe_checkpoint(self.use_torch_checkpoint, block.linear, x, None)
                (x,) = unpack(x, packed_shape, "b * d")

            if self.skip_connection:
                for previous in block_outputs:
                    x = x + previous

            x, values = self._along("t", block.time, x, time_values)
            if self.value_residual and time_values is None:
                time_values = values
            x, values = self._along("f", block.freq, x, freq_values)
            if self.value_residual and freq_values is None:
                freq_values = values

            if self.skip_connection:
                block_outputs.append(x)

        return x
