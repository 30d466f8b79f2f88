"""The RoFormer family: a band-split model whose backbone is the axial transformer."""

from typing import Callable, Optional

import torch
from torch import nn

from ..modules.axial_transformer import AxialTransformer
from ..modules.bands import BandLayout
from ..modules.transformer import Transformer
from .band_split_model import BandSplitModel, check_positive_integers


class BandSplitRoformer(BandSplitModel):
    """BandSplitModel + axial RoPE transformer; the keywords shared by `BSRoformer` and `MelBandRoformer`.

    Transformer keywords: depth (axial layers), time_transformer_depth / freq_transformer_depth /
    linear_transformer_depth (layers of each transformer per axial layer; 0 linear = none), dim_head, heads,
    attn_dropout, ff_dropout, flash_attn (scaled_dot_product_attention kernels, else explicit attention),
    linear_flash_attn (the same for the linear layers; defaults to flash_attn), value_residual,
    skip_connection, use_pope (polar instead of rotary positions: MSST's "BS PolarFormer"), use_shared_bias
    (one qkv bias and one output bias, parameters `shared_qkv_bias` / `shared_out_bias`, added by every
    attention: the original BS-RoFormer SW export, as splifft builds it). For model classes built on this
    one: sequence_model (the stack along each axis, e.g. a Conformer) and final_norm (default: not
    norm_each_transformer). The remaining keywords (stereo, num_stems, stft_*, multi_stft_*, zero_dc, ...) are
    `BandSplitModel`'s.
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        bands: BandLayout,
        norm_each_transformer: bool,
        attn_dropout: float,
        ff_dropout: float,
        time_transformer_depth: int = 2,
        freq_transformer_depth: int = 2,
        linear_transformer_depth: int = 0,
        dim_head: int = 64,
        heads: int = 8,
        flash_attn: bool = True,
        linear_flash_attn: Optional[bool] = None,
        value_residual: bool = False,
        skip_connection: bool = False,
        use_torch_checkpoint: bool = False,
        dim_freqs_in: int = 1025,
        use_pope: bool = False,
        use_shared_bias: bool = False,
        sequence_model: Callable[..., nn.Module] = Transformer,
        final_norm: Optional[bool] = None,
        **band_split_model_kwargs,
    ):
        check_positive_integers(dim=dim, depth=depth, heads=heads, dim_head=dim_head)
        del dim_freqs_in  # accepted for config compatibility: the bin count follows from stft_n_fft
        # zeros in the one published checkpoint (splifft initialises them to ones; zero is a bias's neutral start)
        shared_qkv_bias = nn.Parameter(torch.zeros(3 * heads * dim_head)) if use_shared_bias else None
        shared_out_bias = nn.Parameter(torch.zeros(dim)) if use_shared_bias else None

        backbone = AxialTransformer(
            dim=dim,
            depth=depth,
            time_transformer_depth=time_transformer_depth,
            freq_transformer_depth=freq_transformer_depth,
            linear_transformer_depth=linear_transformer_depth,
            dim_head=dim_head,
            heads=heads,
            attn_dropout=attn_dropout,
            ff_dropout=ff_dropout,
            flash_attn=flash_attn,
            linear_flash_attn=linear_flash_attn,
            norm_output=norm_each_transformer,
            value_residual=value_residual,
            skip_connection=skip_connection,
            use_torch_checkpoint=use_torch_checkpoint,
            use_pope=use_pope,
            shared_qkv_bias=shared_qkv_bias,
            shared_out_bias=shared_out_bias,
            sequence_model=sequence_model,
        )
        super().__init__(
            dim,
            bands=bands,
            backbone=backbone,
            # BS normalises once after the axial transformer; Mel after each transformer
            final_norm=not norm_each_transformer if final_norm is None else final_norm,
            use_torch_checkpoint=use_torch_checkpoint,
            **band_split_model_kwargs,
        )
        if use_shared_bias:  # top-level parameters, as in splifft's state dict
            self.shared_qkv_bias, self.shared_out_bias = shared_qkv_bias, shared_out_bias
