"""Conformer blocks (Gulati et al. 2020) for the axial backbone of BS-Conformer and Mel-Band Conformer.

Each block: half-step feed-forward, self-attention, convolution module, half-step feed-forward, each
residual, then an RMS norm. The attention is the RoFormer's (modules/attention.py); submodule names follow
Music-Source-Separation-Training's bs_conformer.py, so its checkpoints load unchanged.
"""

from typing import Optional, Tuple

import torch
from einops.layers.torch import Rearrange
from rotary_embedding_torch import RotaryEmbedding
from torch import nn

from .attention import Attention
from .checkpointing import maybe_checkpoint
from .norm import RMSNorm
from .pope import PolarEmbedding
from .transformer import FeedForward


class HalfStepFeedForward(nn.Module):
    """The macaron feed-forward: FeedForward(x) / 2, (..., dim) -> (..., dim)."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0):
        super().__init__()
        self.ff = FeedForward(dim=dim, mult=mult, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff(x) * 0.5


class ConvolutionModule(nn.Module):
    """Pointwise conv + GLU, depthwise conv, batch norm, SiLU, pointwise conv: (b, n, dim) -> (b, n, dim).

    The depthwise convolution is 'same'-padded along the sequence (time frames, or bands).
    """

    def __init__(self, dim: int, expansion_factor: int = 2, kernel_size: int = 31, dropout: float = 0.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd (the convolution is centred), got {kernel_size}")
        inner = dim * expansion_factor
        self.net = nn.Sequential(
            RMSNorm(dim),
            Rearrange("b n d -> b d n"),
            nn.Conv1d(dim, inner * 2, 1),
            nn.GLU(dim=1),
            nn.Conv1d(inner, inner, kernel_size, padding=kernel_size // 2, groups=inner),
            nn.BatchNorm1d(inner),
            nn.SiLU(),
            nn.Conv1d(inner, dim, 1),
            Rearrange("b d n -> b n d"),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConformerBlock(nn.Module):
    """ff1 / attn / conv / ff2, residual, then out_norm: (b, n, dim) -> (b, n, dim) and the attention's values."""

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        dim_head: int,
        ff_mult: int,
        attn_dropout: float,
        ff_dropout: float,
        conv_expansion_factor: int,
        conv_kernel_size: int,
        recompute_feedforward: bool,
        **attention_options,
    ):
        super().__init__()
        self.recompute_feedforward = recompute_feedforward
        self.ff1 = HalfStepFeedForward(dim, ff_mult, ff_dropout)
        self.attn = Attention(dim=dim, heads=heads, dim_head=dim_head, dropout=attn_dropout, **attention_options)
        self.conv = ConvolutionModule(dim, conv_expansion_factor, conv_kernel_size, ff_dropout)
        self.ff2 = HalfStepFeedForward(dim, ff_mult, ff_dropout)
        self.out_norm = RMSNorm(dim)

    def forward(
        self, x: torch.Tensor, value_residual: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        x = maybe_checkpoint(self.recompute_feedforward, self.ff1, x) + x
        attn_out, values = self.attn(x, value_residual=value_residual)
        x = attn_out + x
        x = self.conv(x) + x
        x = maybe_checkpoint(self.recompute_feedforward, self.ff2, x) + x
        return self.out_norm(x), values


class Conformer(nn.Module):
    """`depth` Conformer blocks along one axis: (b, n, dim) -> (b, n, dim), with Transformer's keywords and
    return value (output, first attention's values), so the axial backbone runs either.

    Its batch norms see every sequence of the axis at once in training (`batch_statistics`), as in the
    reference; in inference they use their running statistics, and sequences may go through in groups.
    """

    batch_statistics = True

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        dim_head: int = 64,
        heads: int = 8,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        ff_mult: int = 4,
        norm_output: bool = True,
        rotary_embed: Optional[RotaryEmbedding] = None,
        flash_attn: bool = True,
        value_residual_mix: bool = False,
        recompute_feedforward: bool = True,
        pope_embed: Optional[PolarEmbedding] = None,
        shared_qkv_bias: Optional[nn.Parameter] = None,
        shared_out_bias: Optional[nn.Parameter] = None,
        conv_expansion_factor: int = 2,
        conv_kernel_size: int = 31,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            ConformerBlock(
                dim=dim,
                heads=heads,
                dim_head=dim_head,
                ff_mult=ff_mult,
                attn_dropout=attn_dropout,
                ff_dropout=ff_dropout,
                conv_expansion_factor=conv_expansion_factor,
                conv_kernel_size=conv_kernel_size,
                recompute_feedforward=recompute_feedforward,
                rotary_embed=rotary_embed,
                flash=flash_attn,
                value_residual_mix=value_residual_mix,
                pope_embed=pope_embed,
                shared_qkv_bias=shared_qkv_bias,
                shared_out_bias=shared_out_bias,
            )
            for _ in range(depth)
        )
        self.norm = RMSNorm(dim) if norm_output else nn.Identity()

    def forward(
        self, x: torch.Tensor, value_residual: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        first_values = None
        for block in self.layers:
            x, values = block(x, value_residual=value_residual)
            first_values = values if first_values is None else first_values
        return self.norm(x), first_values
