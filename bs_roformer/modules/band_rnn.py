"""Band and sequence modelling of the band-split RNN (Luo & Yu 2022, section 3.2).

Each block models every band across time, then every frame across bands, each with a residual
norm -> bidirectional layer -> projection. Optionally a full-band self-attention across frames follows
each block, in the style of TF-GridNet (Wang et al. 2023).
"""

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .checkpointing import maybe_checkpoint
from .norm import RMSNorm

LAYER_TYPES = ("lstm", "gru", "conv")


class BidirectionalConv(nn.Module):
    """Centred 1-D convolution + GELU, the recurrence-free stand-in: (n, length, dim) -> (n, length, 2 * hidden)."""

    def __init__(self, dim: int, hidden: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd so the context is centred, got {kernel_size}")
        self.conv = nn.Conv1d(dim, 2 * hidden, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(rearrange(self.conv(rearrange(x, "n l d -> n d l")), "n d l -> n l d"))


class SequenceLayer(nn.Module):
    """Residual norm -> bidirectional LSTM / GRU / convolution -> projection: (n, length, dim) -> (n, length, dim)."""

    def __init__(self, dim: int, hidden: int, layer_type: str = "lstm", conv_kernel_size: int = 5):
        super().__init__()
        if layer_type not in LAYER_TYPES:
            raise ValueError(f"layer_type must be one of {', '.join(LAYER_TYPES)}, got {layer_type!r}")
        self.norm = RMSNorm(dim)
        if layer_type == "conv":
            self.layer = BidirectionalConv(dim, hidden, conv_kernel_size)
        else:
            recurrent = nn.LSTM if layer_type == "lstm" else nn.GRU
            self.layer = recurrent(dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.layer(self.norm(x))
        if isinstance(hidden, tuple):  # recurrent layers also return their final states
            hidden = hidden[0]
        return x + self.proj(hidden)


class FullBandAttention(nn.Module):
    """Residual multi-head attention across frames, each frame seen through all its bands (TF-GridNet).

    (b, t, k, dim) -> (b, t, k, dim). Per head, a frame's query and key are the concatenation of its k
    bands' `dim_attention`-sized embeddings, and its value the concatenation of their dim / heads features.
    """

    def __init__(self, dim: int, heads: int, dim_attention: int):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention_heads ({heads}) must divide dim ({dim})")
        self.heads = heads
        self.norm = RMSNorm(dim)
        self.to_qk = nn.Linear(dim, 2 * heads * dim_attention)
        self.to_v = nn.Linear(dim, dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm(x)
        q, k = rearrange(self.to_qk(normed), "b t k (qk h e) -> qk b h t (k e)", qk=2, h=self.heads)
        v = rearrange(self.to_v(normed), "b t k (h e) -> b h t (k e)", h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.to_out(rearrange(out, "b h t (k e) -> b t k (h e)", k=x.shape[2]))


class BandSequenceBlock(nn.Module):
    """Across time for every band, then across bands for every frame: (b, t, k, dim) -> (b, t, k, dim)."""

    def __init__(self, dim: int, hidden: int, layer_type: str, conv_kernel_size: int, attention_heads: int, dim_attention: int):
        super().__init__()
        self.across_time = SequenceLayer(dim, hidden, layer_type, conv_kernel_size)
        self.across_bands = SequenceLayer(dim, hidden, layer_type, conv_kernel_size)
        self.attention = FullBandAttention(dim, attention_heads, dim_attention) if attention_heads > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, k, _ = x.shape
        x = rearrange(self.across_time(rearrange(x, "b t k d -> (b k) t d")), "(b k) t d -> b t k d", k=k)
        x = rearrange(self.across_bands(rearrange(x, "b t k d -> (b t) k d")), "(b t) k d -> b t k d", t=t)
        return self.attention(x) if self.attention is not None else x


class BandSequenceModel(nn.ModuleList):
    """`depth` band-sequence blocks: (b, frames, bands, dim) -> (b, frames, bands, dim).

    use_torch_checkpoint: recompute each block in the backward pass instead of keeping its activations.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        hidden: int,
        layer_type: str = "lstm",
        conv_kernel_size: int = 5,
        attention_heads: int = 0,
        dim_attention: int = 4,
        use_torch_checkpoint: bool = False,
    ):
        super().__init__(
            [BandSequenceBlock(dim, hidden, layer_type, conv_kernel_size, attention_heads, dim_attention) for _ in range(depth)]
        )
        self.use_torch_checkpoint = use_torch_checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = maybe_checkpoint(self.use_torch_checkpoint, block, x)
        return x
