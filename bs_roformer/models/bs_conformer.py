"""BS-Conformer (Music-Source-Separation-Training's bs_conformer.py): BS-RoFormer with Conformer blocks
(modules/conformer.py) instead of transformer layers along time and frequency.

What differs from BS-RoFormer: the stacks along each axis, and their keywords' names.
"""

from functools import partial

from ..modules.conformer import Conformer
from .bs_roformer import BSRoformer


class BSConformer(BSRoformer):
    """Band-Split Conformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Keywords of this model, as in MSST (the rest: `BSRoformer`): time_conformer_depth /
    freq_conformer_depth (Conformer blocks per axial layer), linear_conformer_depth (linear-attention
    transformer layers before them; 0 = none), ff_mult (feed-forward width / dim), conv_expansion_factor
    (convolution module width / dim), conv_kernel_size (odd).
    """

    def __init__(
        self,
        dim: int,
        *,
        depth: int,
        time_conformer_depth: int = 2,
        freq_conformer_depth: int = 2,
        linear_conformer_depth: int = 0,
        ff_mult: int = 4,
        conv_expansion_factor: int = 2,
        conv_kernel_size: int = 31,
        **bs_roformer_kwargs,
    ):
        super().__init__(
            dim,
            depth=depth,
            time_transformer_depth=time_conformer_depth,
            freq_transformer_depth=freq_conformer_depth,
            linear_transformer_depth=linear_conformer_depth,
            sequence_model=conformer_stack(ff_mult, conv_expansion_factor, conv_kernel_size),
            **bs_roformer_kwargs,
        )


def conformer_stack(ff_mult: int, conv_expansion_factor: int, conv_kernel_size: int):
    """The Conformer of these settings, called with the axial backbone's Transformer keywords."""
    return partial(Conformer, ff_mult=ff_mult, conv_expansion_factor=conv_expansion_factor, conv_kernel_size=conv_kernel_size)
