"""Rotary position embeddings (RoFormer, Su et al. 2021) for the time and frequency transformers.

The frequencies are the `freqs` parameter of rotary-embedding-torch's `RotaryEmbedding`, so checkpoints
keep their `...rotary_embed.freqs` keys. The rotation itself is computed here rather than through
`RotaryEmbedding.rotate_queries_or_keys`: that method's caching changed between releases (a cache layout
read by one release is silently skipped by another), and it builds the angles in the dtype of the queries,
which loses whole radians at long sequences under bf16/fp16. Angles here are always float32.
"""

from typing import NamedTuple

import torch
from einops import repeat
from rotary_embedding_torch import RotaryEmbedding


class RotaryTables(NamedTuple):
    """cos and sin of the rotation angle per position and feature: each (seq_len, dim_head), float32."""

    cos: torch.Tensor
    sin: torch.Tensor


def rotary_tables(rotary_embed: RotaryEmbedding, seq_len: int, device: torch.device) -> RotaryTables:
    """Angles position * frequency for positions 0..seq_len-1, each frequency used by one feature pair."""
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, rotary_embed.freqs.to(device=device, dtype=torch.float32))
    angles = repeat(angles, "n f -> n (f pair)", pair=2)
    return RotaryTables(angles.cos(), angles.sin())


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """Rotate each interleaved feature pair (x1, x2) -> (-x2, x1): (..., d) -> (..., d)."""
    pairs = x.unflatten(-1, (-1, 2))
    x1, x2 = pairs.unbind(dim=-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, tables: RotaryTables) -> torch.Tensor:
    """Rotate queries or keys by their position: (..., seq_len, d) -> (..., seq_len, d), dtype kept."""
    rotated = x * tables.cos + rotate_half(x) * tables.sin
    return rotated.to(x.dtype)
