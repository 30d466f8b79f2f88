"""Axial transformer over band features: attention across time within each band, then across bands
within each frame (BS-RoFormer, Lu et al. 2023; axial attention, Ho et al. 2019)."""

from typing import Callable, List, Optional, Tuple

import torch
from einops import rearrange
from rotary_embedding_torch import RotaryEmbedding
from torch import nn

from .checkpointing import maybe_checkpoint
from .cpu_workers import map_across_cores
from .graph_capture import capturing_graph
from .pope import PolarEmbedding
from .transformer import Transformer

# Inference runs each transformer on a few sequences at a time, sized so that its largest temporary stays
# around 16 MB: fresh allocations of hundreds of MB cost a page fault per 4 kB (the default allocator maps
# them anew every time), while small ones stay in cache and are reused.
GROUP_TEMPORARY_FLOATS = 1 << 22
# Inference on the CPU gives each core whole groups, one thread each, rather than every operator all cores
# (modules/cpu_workers.py)
GROUPS_ACROSS_CORES = True


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
    use_pope: polar position embeddings (PoPE, modules/pope.py) instead of rotary ones, one per axis.
    shared_qkv_bias / shared_out_bias: bias parameters every attention adds (the model owns them).
    sequence_model: the stack along each axis, called with Transformer's keywords: Transformer, or a
        Conformer (modules/conformer.py); the optional linear layers are always a Transformer.
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
        use_pope: bool = False,
        shared_qkv_bias: Optional[nn.Parameter] = None,
        shared_out_bias: Optional[nn.Parameter] = None,
        sequence_model: Callable[..., nn.Module] = Transformer,
    ):
        super().__init__()
        self.group_tokens = max(1, GROUP_TEMPORARY_FLOATS // max(4 * dim, 3 * heads * dim_head))
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
            # with whole transformers checkpointed, recomputing inside them again would be wasted
            recompute_feedforward=not use_torch_checkpoint,
            shared_qkv_bias=shared_qkv_bias,
            shared_out_bias=shared_out_bias,
        )
        linear_flash_attn = flash_attn if linear_flash_attn is None else linear_flash_attn
        # positions: one embedding per axis, shared by all its attentions
        if use_pope:
            time_positions = dict(pope_embed=PolarEmbedding(dim_head, heads))
            freq_positions = dict(pope_embed=PolarEmbedding(dim_head, heads))
        else:
            time_positions = dict(rotary_embed=RotaryEmbedding(dim=dim_head))
            freq_positions = dict(rotary_embed=RotaryEmbedding(dim=dim_head))

        for layer_index in range(depth):
            mix_values = value_residual and layer_index > 0
            transformers = []
            if linear_transformer_depth > 0:
                transformers.append(
                    Transformer(depth=linear_transformer_depth, linear_attn=True, flash_attn=linear_flash_attn, **common)
                )
            for axis_depth, positions in (
                (time_transformer_depth, time_positions),
                (freq_transformer_depth, freq_positions),
            ):
                transformers.append(
                    sequence_model(
                        depth=axis_depth, flash_attn=flash_attn, value_residual_mix=mix_values, **positions, **common
                    )
                )
            self.append(AxialBlock(transformers))

    def _along(
        self, axis: str, transformer: Transformer, x: torch.Tensor, value_residual: Optional[List[torch.Tensor]]
    ) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
        """Run `transformer` along the time ("t") or band ("f") axis of x (b, t, f, d).

        The sequences are independent, so they go through a group at a time. In inference each group's
        output is written back over its input in x (on the CPU, the cores take groups side by side); with
        autograd the outputs are gathered. Returns the output and, for value residual learning, the first
        attention's values: one (sequences, h, n, d) tensor per group, passed back as `value_residual` to the
        later layers, which group alike (slicing one big tensor instead would make autograd zero-fill a
        full-size gradient for every group).
        """
        if capturing_graph() or (self.training and getattr(transformer, "batch_statistics", False)):
            return self._along_at_once(axis, transformer, x, value_residual)
        batch, frames, bands, dim = x.shape
        length, count = (frames, bands) if axis == "t" else (bands, frames)
        per_group = max(1, self.group_tokens // length)
        groups = [(item, start, min(start + per_group, count)) for item in range(batch) for start in range(0, count, per_group)]
        in_place = not torch.is_grad_enabled()

        def run(index: int) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
            item, start, stop = groups[index]
            # (sequences, length, d) views into x
            sequences = x[item, :, start:stop].transpose(0, 1) if axis == "t" else x[item, start:stop]
            residual = None if value_residual is None else value_residual[index]
            out, group_values = maybe_checkpoint(self.use_torch_checkpoint, transformer, sequences, residual)
            if in_place:
                sequences.copy_(out)  # groups are disjoint, so workers may write side by side
                out = None
            return out, group_values

        if in_place and GROUPS_ACROSS_CORES and x.device.type == "cpu":
            results = map_across_cores(run, range(len(groups)))
        else:
            results = [run(index) for index in range(len(groups))]
        values = [group_values for _, group_values in results] if self.value_residual and value_residual is None else None
        if not in_place:
            out = torch.cat([out for out, _ in results])
            x = rearrange(out, "(b f) t d -> b t f d", b=batch) if axis == "t" else out.view(batch, frames, bands, dim)
        return x, values

    def _along_at_once(
        self, axis: str, transformer: nn.Module, x: torch.Tensor, value_residual: Optional[List[torch.Tensor]]
    ) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
        """`_along` as one pass over all sequences, without in-place writes: for batch norm in training,
        whose statistics (and running averages) are those of all sequences together, as in the reference;
        and for a captured graph, whose batch size and length may vary (see graph_capture.py)."""
        pattern = "b t f d -> (b f) t d" if axis == "t" else "b t f d -> (b t) f d"
        residual = None if value_residual is None else value_residual[0]
        out, values = maybe_checkpoint(self.use_torch_checkpoint, transformer, rearrange(x, pattern), residual)
        back = "(b f) t d -> b t f d" if axis == "t" else "(b t) f d -> b t f d"
        x = rearrange(out, back, f=x.shape[2]) if axis == "t" else rearrange(out, back, t=x.shape[1])
        return x, [values] if self.value_residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            x = x.clone()  # inference writes the layers' outputs over their inputs
        time_values = freq_values = None
        block_outputs: List[torch.Tensor] = []

        for block in self:
            if block.linear is not None:
                tokens, _ = maybe_checkpoint(self.use_torch_checkpoint, block.linear, x.flatten(1, 2), None)
                x = tokens.view_as(x)

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
