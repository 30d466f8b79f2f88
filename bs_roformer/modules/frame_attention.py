"""Multichannel multi-head attention across frames (carperbr/frame-transformer).

Every channel of a (b, c, features, frames) spectrogram attends across its frames on its own: a frame's
features (frequency bins) are its token, split into heads, rotated by the frame's position (rotary, with
interleaved pairs), and scored with scale 1 / sqrt(features), the full feature width rather than the head
width (as in the reference). Projections are `MultichannelLinear`s; the softmax runs in float32.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .multichannel import MultichannelLinear
from .rotary import RotaryFrequencies, apply_rotary, rotary_tables


class MultichannelMultiheadAttention(nn.Module):
    """(b, c, features, frames) queries, optional (b, c, features, frames) memory -> (b, c, features, frames).

    depthwise: the projections also mix the channels (V3). out_name: the output projection's name
    (`out_proj` in V1, `o_proj` in V3). residual_scores: return the pre-softmax scores and add the
    previous layer's (RealFormer, He et al. 2020; V3); otherwise attention runs through
    `F.scaled_dot_product_attention`.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        features: int,
        *,
        depthwise: bool = False,
        out_name: str = "out_proj",
        residual_scores: bool = False,
    ):
        super().__init__()
        if features % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide the feature count of every layer ({features})")
        self.num_heads = num_heads
        self.scale = 1 / math.sqrt(features)
        self.residual_scores = residual_scores
        self.out_name = out_name
        self.rotary_embedding = RotaryFrequencies(features // num_heads)
        self.q_proj = MultichannelLinear(channels, channels, features, features, depthwise=depthwise)
        self.k_proj = MultichannelLinear(channels, channels, features, features, depthwise=depthwise)
        self.v_proj = MultichannelLinear(channels, channels, features, features, depthwise=depthwise)
        setattr(self, out_name, MultichannelLinear(channels, channels, features, features, depthwise=depthwise))

    def forward(
        self, x: torch.Tensor, memory: Optional[torch.Tensor] = None, previous_scores: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Output (b, c, features, frames), and the scores (b, c, heads, frames, frames) with residual_scores."""
        source = x if memory is None else memory
        rotation = rotary_tables(self.rotary_embedding, x.shape[-1], x.device)
        q = self._rotated(self._heads(self.q_proj(x)), rotation)
        k = self._rotated(self._heads(self.k_proj(source)), rotation)
        # contiguous heads: with strided ones the fused SDPA kernels fall back to the explicit math
        v = self._heads(self.v_proj(source)).contiguous()
        scores = None
        # COMPAT: frame-transformer computes attention in float32 whatever the autocast precision
        with torch.autocast(x.device.type, enabled=False):
            q, k, v = q.float(), k.float(), v.float()
            if self.residual_scores:
                scores = torch.matmul(q * self.scale, k.transpose(-1, -2))
                if previous_scores is not None:
                    scores = scores + previous_scores
                out = torch.matmul(scores.softmax(dim=-1), v)
            else:
                # batch and channels as one axis: the fused kernels take (n, heads, frames, width)
                out = F.scaled_dot_product_attention(*(t.flatten(0, 1) for t in (q, k, v)), scale=self.scale)
                out = out.unflatten(0, x.shape[:2])
        out = rearrange(out, "b c h w d -> b c (h d) w")
        return getattr(self, self.out_name)(out), scores

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, "b c (h d) w -> b c h w d", h=self.num_heads)

    @staticmethod
    def _rotated(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        # an odd head width leaves its last feature unrotated, as rotary-embedding-torch does
        rotated = 2 * rotation.shape[-1]
        if rotated == x.shape[-1]:
            return apply_rotary(x, rotation)
        return torch.cat([apply_rotary(x[..., :rotated], rotation), x[..., rotated:]], dim=-1)
