"""Attention layers of the axial transformer.

`Attention` is the gated, rotary multi-head self-attention of BS-RoFormer, with optional value-residual
mixing (Zhou et al. 2024, "Value Residual Learning"), polar instead of rotary positions (PoPE, see
modules/pope.py) and biases shared by every attention (the original BS-RoFormer SW export).
`LinearAttention` is the cross-covariance attention of XCiT (El-Nouby et al. 2021) used by the optional
linear transformer layers. Submodule names match the reference implementations, so their checkpoints load
unchanged.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from einops.layers.torch import Rearrange
from rotary_embedding_torch import RotaryEmbedding
from torch import einsum, nn

from .norm import RMSNorm
from .pope import PolarEmbedding, apply_pope
from .recompute import linear_of
from .rotary import apply_rotary, rotary_tables


def split_heads(qkv: torch.Tensor, heads: int, rotation: Optional[torch.Tensor] = None):
    """(b, n, 3·h·d) -> q, k, v each (b, h, n, d); q and k rotated by position when `rotation` is given."""
    if torch.is_grad_enabled() and qkv.requires_grad:
        return _SplitHeads.apply(qkv, heads, rotation)
    q, k, v = rearrange(qkv, "b n (qkv h d) -> qkv b h n d", qkv=3, h=heads)
    if rotation is not None:
        q, k = apply_rotary(q, rotation), apply_rotary(k, rotation)
    return q, k, v


class _SplitHeads(torch.autograd.Function):
    """split_heads for training, with a lean backward.

    Autograd's own backward for the view-and-rotate chain zero-fills a qkv-sized gradient and copies
    each part into it through intermediate tensors, and the view keeps qkv alive for the backward; here
    the parts are separate tensors (qkv is freed) and the gradients are written straight into place.
    """

    @staticmethod
    def forward(ctx, qkv, heads, rotation):
        q, k, v = rearrange(qkv, "b n (qkv h d) -> qkv b h n d", qkv=3, h=heads)
        if rotation is not None:
            q, k = apply_rotary(q, rotation), apply_rotary(k, rotation)
        ctx.save_for_backward(rotation)
        return q.contiguous(), k.contiguous(), v.contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_q, grad_k, grad_v):
        (rotation,) = ctx.saved_tensors
        reference = next(g for g in (grad_q, grad_k, grad_v) if g is not None)
        batch, heads, length, dim_head = reference.shape
        grad = reference.new_empty(batch, length, 3, heads, dim_head)
        for index, part in enumerate((grad_q, grad_k, grad_v)):
            if part is None:
                grad[:, :, index].zero_()
                continue
            if rotation is not None and index < 2:
                part = apply_rotary(part, rotation.conj())
            grad[:, :, index] = part.transpose(1, 2)
        return grad.view(batch, length, -1), None, None


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    flash: bool,
    dropout: float = 0.0,
    scale: Optional[float] = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v: (b, h, i, d), (b, h, j, d), (b, h, j, d) -> (b, h, i, d).

    `flash` uses `F.scaled_dot_product_attention`, which picks flash / memory-efficient kernels on CUDA and
    fused kernels on CPU and MPS; otherwise the attention matrix is formed explicitly.
    """
    if flash:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scale)

    scale = q.shape[-1] ** -0.5 if scale is None else scale
    similarity = einsum("b h i d, b h j d -> b h i j", q, k) * scale
    weights = F.dropout(similarity.softmax(dim=-1), p=dropout, training=dropout > 0)
    return einsum("b h i j, b h j d -> b h i d", weights, v)


def gated_heads(out: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
    """Attention outputs (b, h, n, d) scaled by a sigmoid gate per head and position (b, n, h) -> (b, n, h·d)."""
    return rearrange(out * rearrange(gates, "b n h -> b h n 1").sigmoid(), "b h n d -> b n (h d)")


class Attention(nn.Module):
    """Pre-norm multi-head self-attention with a sigmoid gate per head: (b, n, dim) -> (b, n, dim).

    forward also returns this layer's values (b, h, n, dim_head), which the first layer of a value-residual
    stack hands to every later layer.

    Positions: rotary_embed (RoPE) or pope_embed (PoPE), or none. shared_qkv_bias (3·h·d) and
    shared_out_bias (dim): bias parameters owned by the model and shared by all its attentions.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
        rotary_embed: Optional[RotaryEmbedding] = None,
        flash: bool = True,
        value_residual_mix: bool = False,
        pope_embed: Optional[PolarEmbedding] = None,
        shared_qkv_bias: Optional[nn.Parameter] = None,
        shared_out_bias: Optional[nn.Parameter] = None,
    ):
        super().__init__()
        if rotary_embed is not None and pope_embed is not None:
            raise ValueError("an attention layer takes rotary or polar (PoPE) positions, not both")
        self.heads = heads
        self.dropout = dropout
        self.flash = flash
        self.scale = dim_head**-0.5
        dim_inner = heads * dim_head

        # shared by every attention of one axis; registered here so their keys sit beside each attention
        self.rotary_embed = rotary_embed
        self.pope_embed = pope_embed

        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Linear(dim, dim_inner * 3, bias=shared_qkv_bias is not None)
        self.to_value_residual_mix = nn.Linear(dim, heads) if value_residual_mix else None
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(dim_inner, dim, bias=shared_out_bias is not None), nn.Dropout(dropout))
        if shared_qkv_bias is not None:
            self.to_qkv.bias = shared_qkv_bias
        if shared_out_bias is not None:
            self.to_out[0].bias = shared_out_bias

    def forward(
        self, x: torch.Tensor, value_residual: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.norm(x)
        rotation = None if self.rotary_embed is None else rotary_tables(self.rotary_embed, x.shape[-2], x.device)
        q, k, v = split_heads(self.to_qkv(x), self.heads, rotation)
        values = v

        if self.to_value_residual_mix is not None:
            if value_residual is None:
                raise ValueError("this attention layer mixes in the first layer's values: pass value_residual")
            mix = rearrange(self.to_value_residual_mix(x), "b n h -> b h n 1").sigmoid()
            v = v.lerp(value_residual, mix)

        if self.pope_embed is not None:
            query_rotation, key_rotation = self.pope_embed.rotations(x.shape[-2], x.device)
            q, k = apply_pope(q, query_rotation), apply_pope(k, key_rotation)

        dropout = self.dropout if self.training else 0.0
        # the scale of the head size, also for PoPE's queries and keys of twice that size
        out = attend(q, k, v, flash=self.flash, dropout=dropout, scale=self.scale)
        project_out, dropout_out = self.to_out
        # the backward recomputes the gated heads from the attention output it keeps anyway
        gated = linear_of(gated_heads, project_out.weight, project_out.bias, out, self.to_gates(x))
        return dropout_out(gated), values


class LinearAttention(nn.Module):
    """XCiT cross-covariance attention: heads attend across their feature channels, so the cost is linear
    in the number of tokens. (b, n, dim) -> (b, n, dim)."""

    def __init__(
        self,
        *,
        dim: int,
        dim_head: int = 32,
        heads: int = 8,
        scale: float = 8.0,
        flash: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        dim_inner = dim_head * heads
        self.scale = scale
        self.flash = flash
        self.dropout = dropout

        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Sequential(
            nn.Linear(dim, dim_inner * 3, bias=False),
            Rearrange("b n (qkv h d) -> qkv b h d n", qkv=3, h=heads),
        )
        # learned per-head temperature, applied as exp(temperature)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_out = nn.Sequential(Rearrange("b h d n -> b n (h d)"), nn.Linear(dim_inner, dim, bias=False))

    def forward(self, x: torch.Tensor, value_residual: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, None]:
        x = self.norm(x)
        q, k, v = self.to_qkv(x)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        q = q * self.temperature.exp()
        dropout = self.dropout if self.training else 0.0
        out = attend(q, k, v, flash=self.flash, dropout=dropout, scale=self.scale)
        return self.to_out(out), None
