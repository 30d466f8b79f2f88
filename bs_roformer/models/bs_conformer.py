"""BS-Conformer (Music-Source-Separation-Training's bs_conformer.py): BS-RoFormer with Conformer blocks
(modules/conformer.py) instead of transformer layers along time and frequency.

What differs from BS-RoFormer: the stacks along each axis, and their settings' names.
"""

from functools import partial
from typing import Callable, ClassVar

from torch import nn

from ..modules.conformer import Conformer
from .bs_roformer import BSRoformer
from .config import ConformerConfig, ContiguousBandsConfig, model_config


@model_config
class BSConformerConfig(ContiguousBandsConfig, ConformerConfig):
    """BS-Conformer's settings; the defaults are MSST's."""

    model_type: ClassVar[str] = "bs_conformer"

    mask_estimator_depth: int = 2


def conformer_stack(config: ConformerConfig) -> Callable[..., nn.Module]:
    """The Conformer of these settings, called with the axial backbone's Transformer keywords."""
    return partial(
        Conformer, ff_mult=config.ff_mult, conv_expansion_factor=config.conv_expansion_factor,
        conv_kernel_size=config.conv_kernel_size,
    )


class BSConformer(BSRoformer):
    """Band-Split Conformer: (b, t) or (b, s, t) audio -> (b, s, t') or (b, n, s, t') stems.

    Settings: `BSConformerConfig` (keywords, or a config), as in MSST.
    """

    Config = BSConformerConfig

    def sequence_model(self, config: ConformerConfig) -> Callable[..., nn.Module]:
        return conformer_stack(config)
