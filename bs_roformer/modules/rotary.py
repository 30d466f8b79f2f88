"""Rotary position embeddings (RoFormer, Su et al. 2021) for the time and frequency transformers.

The frequencies are the `freqs` parameter of rotary-embedding-torch's `RotaryEmbedding`, so checkpoints
keep their `...rotary_embed.freqs` keys. The rotation itself is computed here rather than through
`RotaryEmbedding.rotate_queries_or_keys`: that method's caching changed between releases (a cache layout
read by one release is silently skipped by another), and it builds the angles in the dtype of the queries,
which loses whole radians at long sequences under bf16/fp16. Angles here are always float32.
"""

from typing import Union

import torch
from rotary_embedding_torch import RotaryEmbedding
from torch import nn

from .graph_capture import capturing_graph


def rotary_tables(rotary_embed: Union[RotaryEmbedding, "RotaryFrequencies"], seq_len: int, device: torch.device) -> torch.Tensor:
    """exp(i * position * frequency): (seq_len, dim_head / 2) complex64, one frequency per feature pair
    (as real (cos, sin) pairs while a graph is captured)."""
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    angles = torch.outer(positions, rotary_embed.freqs.to(device=device, dtype=torch.float32))
    if capturing_graph():  # no complex numbers in ONNX (nor well in inductor): (cos, sin) pairs (seq_len, dim_head / 2, 2)
        return torch.stack((angles.cos(), angles.sin()), dim=-1)
    return torch.polar(torch.ones_like(angles), angles)


def apply_rotary(x: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys by their position: (..., seq_len, d) -> (..., seq_len, d), dtype kept.

    Each interleaved feature pair (x1, x2) is the complex number x1 + i x2; rotating it by the angle is one
    complex multiplication: (x1 cos - x2 sin) + i (x1 sin + x2 cos), in float32 at least.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    pairs = x.to(dtype).unflatten(-1, (-1, 2))
    if not rotation.is_complex():  # the real tables of a captured graph
        (x1, x2), (cos, sin) = pairs.unbind(-1), rotation.unbind(-1)
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2).to(x.dtype)
    if pairs.stride(-1) != 1 or any(stride % 2 for stride in pairs.stride()[:-1]):
        pairs = pairs.contiguous()
    rotated = torch.view_as_real(torch.view_as_complex(pairs) * rotation).flatten(-2)
    return rotated.to(x.dtype)


class RotaryFrequencies(nn.Module):
    """The frequencies of a rotary embedding as a persistent buffer `freqs` (dim / 2 values, one per feature
    pair), as the frame-transformer's local copy of rotary-embedding-torch stores them: a buffer, not the
    package's (frozen) parameter, so they are not counted among the parameters. Use with `rotary_tables`."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        self.dim, self.theta = dim, theta
        self.register_buffer("freqs", self.exact())

    def exact(self) -> torch.Tensor:
        """The frequencies computed afresh (a half-precision checkpoint rounds them)."""
        return 1.0 / self.theta ** (torch.arange(0, self.dim, 2)[: self.dim // 2].float() / self.dim)
