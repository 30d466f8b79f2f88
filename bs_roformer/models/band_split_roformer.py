"""The RoFormer family: a band-split model whose backbone is the axial transformer."""

from torch import nn

from ..modules.axial_transformer import AxialTransformer
from .band_split_model import BandSplitModel
from .config import RoformerConfig


class BandSplitRoformer(BandSplitModel):
    """BandSplitModel + axial RoPE transformer, the body shared by `BSRoformer` and `MelBandRoformer`.

    Their settings: `RoformerConfig` (the transformer's) on `BandSplitConfig` (STFT, masks, losses).
    """

    Config = RoformerConfig
    # BS normalises once after the axial transformer; Mel after each transformer
    norm_each_transformer = False

    def build_backbone(self, config: RoformerConfig) -> nn.Module:
        return AxialTransformer(
            dim=config.dim,
            depth=config.depth,
            time_transformer_depth=config.time_transformer_depth,
            freq_transformer_depth=config.freq_transformer_depth,
            linear_transformer_depth=config.linear_transformer_depth,
            dim_head=config.dim_head,
            heads=config.heads,
            attn_dropout=config.attn_dropout,
            ff_dropout=config.ff_dropout,
            flash_attn=config.flash_attn,
            linear_flash_attn=config.linear_flash_attn,
            norm_output=self.norm_each_transformer,
            value_residual=config.value_residual,
            skip_connection=config.skip_connection,
            use_torch_checkpoint=config.use_torch_checkpoint,
        )
