"""HyperACE mask heads (unwa's BS-RoFormer HyperACE v1 and v2): the per-band MLP mask plus a residual mask
from a convolutional segmentation network over the (time x band) feature map, whose middle is the
hypergraph module HyperACE of YOLOv13 (Lei et al. 2025, arXiv:2506.17733).

    features (b, t, bands, dim) -> image (b, dim, t, bands) -> backbone: four maps, time halved 2-5 times
      (v2 also halves the bands of the last two) -> HyperACE: the maps fused at the third one's size,
      hypergraph branches beside local ones -> decoder: top-down with skips, HyperACE mixed in by learned
      gates -> time restored -> upsample head: bands x 16 (v2: TFC-TDF after every step) -> out_bins
      -> (b, 4, t, out_bins), added to the MLP mask as (b, t, (out_bins 4)).

Attribute names are the reference's (splifft 0.0.9 `models/utils/hyperace.py`, after unwa's code), so the
checkpoints' `mask_estimators.N.segm.*` keys load unchanged. The channel widths are fixed by the published
checkpoints, whatever the model's dim.
"""

from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .mask_estimator import MaskEstimator

Size2d = Union[int, Tuple[int, int]]

# channels of the backbone's stem and of its four output maps, in every published HyperACE checkpoint
STEM_CHANNELS = 64
STAGE_CHANNELS = (256, 384, 512, 768)
# the segmentation output: 4 values per bin (2 channels x real/imag for a stereo model)
SEGMENT_CHANNELS = 4
DEFAULT_HYPEREDGES = {1: 16, 2: 32}


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    # GroupNorm(channels, channels) is the same math and ~2.5x faster on CPU, but its other rounding is
    # amplified by these chains of norms past 1e-4 of the reference's output at random weights
    return nn.InstanceNorm2d(channels, affine=True, eps=1e-8)


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (b, c, h, w) to (b, c, *size)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class PointwiseConv(nn.Module):
    """1x1 convolution, instance norm, SiLU: (b, c_in, h, w) -> (b, c_out, h, w)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = instance_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.conv(x)))


class SeparableConv(nn.Module):
    """Depthwise 3x3 then pointwise convolution, instance norm, SiLU: (b, c_in, h, w) -> (b, c_out, h/s, w/s)."""

    def __init__(self, c_in: int, c_out: int, stride: Size2d = 1):
        super().__init__()
        self.dwconv = nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False)
        self.pwconv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = instance_norm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.bn(self.pwconv(self.dwconv(x))))


class SeparableResidual(nn.Module):
    """x + two separable convolutions of x: (b, c, h, w) -> (b, c, h, w)."""

    def __init__(self, channels: int):
        super().__init__()
        self.dsconv1 = SeparableConv(channels, channels)
        self.dsconv2 = SeparableConv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dsconv2(self.dsconv1(x))


class CrossStage(nn.Module):
    """Cross-stage partial block: residual separable convolutions on one projection, concatenated with a
    second projection and fused: (b, c_in, h, w) -> (b, c_out, h, w)."""

    def __init__(self, c_in: int, c_out: int, blocks: int, hidden: int):
        super().__init__()
        self.cv1 = PointwiseConv(c_in, hidden)
        self.cv2 = PointwiseConv(c_in, hidden)
        self.cv3 = PointwiseConv(2 * hidden, c_out)
        self.m = nn.Sequential(*[SeparableResidual(hidden) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class CrossStageNarrow(nn.Module):
    """A `CrossStage` block at half the output width, between two projections: (b, c_in, h, w) -> (b, c_out, h, w)."""

    def __init__(self, c_in: int, c_out: int, blocks: int):
        super().__init__()
        hidden = c_out // 2
        self.cv1 = PointwiseConv(c_in, hidden)
        self.m = CrossStage(hidden, hidden, blocks, hidden)
        self.cv2 = PointwiseConv(hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv2(self.m(self.cv1(x)))


class AdaptiveHyperedges(nn.Module):
    """Soft hyperedges: each of `num_hyperedges` prototypes (learned, shifted by the input's mean and max)
    scores every vertex by multi-head similarity: (b, n, c) vertices -> (b, hyperedges, n) weights that sum
    to one over the vertices."""

    def __init__(self, channels: int, num_hyperedges: int, num_heads: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"HyperACE: {channels} channels do not split into num_heads={num_heads} heads")
        self.num_heads = num_heads
        self.global_proto = nn.Parameter(torch.randn(num_hyperedges, channels))
        self.context_mapper = nn.Linear(2 * channels, num_hyperedges * channels, bias=False)
        self.query_proj = nn.Linear(channels, channels, bias=False)
        self.scale = (channels // num_heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        context = torch.cat((x.mean(dim=1), x.amax(dim=1)), dim=-1)  # (b, 2c)
        shift = rearrange(self.context_mapper(context), "b (e c) -> b e c", c=x.shape[-1])
        prototypes = rearrange(self.global_proto + shift, "b e (h d) -> b e h d", h=self.num_heads)
        queries = rearrange(self.query_proj(x), "b n (h d) -> b n h d", h=self.num_heads)
        similarity = torch.einsum("bnhd,behd->ben", queries, prototypes) * (self.scale / self.num_heads)
        return similarity.softmax(dim=-1)  # the mean over heads, normalised over vertices


class HypergraphConv(nn.Module):
    """Vertices -> hyperedges -> vertices message passing, residual: (b, n, c), (b, e, n) -> (b, n, c)."""

    def __init__(self, channels: int):
        super().__init__()
        self.W_e = nn.Linear(channels, channels, bias=False)
        self.W_v = nn.Linear(channels, channels, bias=False)

    def forward(self, x: torch.Tensor, incidence: torch.Tensor) -> torch.Tensor:
        edges = F.silu(self.W_e(incidence @ x))
        return x + F.silu(self.W_v(incidence.transpose(1, 2) @ edges))


class HypergraphComputation(nn.Module):
    """Every pixel a vertex: adaptive hyperedges, then hypergraph message passing: (b, c, h, w) -> (b, c, h, w)."""

    def __init__(self, channels: int, num_hyperedges: int, num_heads: int):
        super().__init__()
        self.adaptive_hyperedge_gen = AdaptiveHyperedges(channels, num_hyperedges, num_heads)
        self.hypergraph_conv = HypergraphConv(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        vertices = rearrange(x, "b c h w -> b (h w) c")
        out = self.hypergraph_conv(vertices, self.adaptive_hyperedge_gen(vertices))
        return rearrange(out, "b (h w) c -> b c h w", h=height)


class HypergraphBranch(nn.Module):
    """Hypergraph computation over every pixel of a map, beside a lateral projection:
    (b, c, h, w) -> (b, c, h, w)."""

    def __init__(self, channels: int, num_hyperedges: int, num_heads: int):
        super().__init__()
        self.cv1 = PointwiseConv(channels, channels)
        self.cv2 = PointwiseConv(channels, channels)
        self.ahc = HypergraphComputation(channels, num_hyperedges, num_heads)
        self.cv3 = PointwiseConv(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.ahc(self.cv2(x)), self.cv1(x)), dim=1))


class HyperACE(nn.Module):
    """The four backbone maps fused at the third one's size and split by channel into a high-order
    (hypergraph), a low-order (convolutional) and a shortcut part, fused again:
    [(b, c_k, h_k, w_k) for k in 0..3] -> (b, out_channels, h_2, w_2)."""

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_hyperedges: int,
        num_heads: int,
        high_order_branches: int,
        low_order_blocks: int,
    ):
        super().__init__()
        middle = in_channels[2]
        self.split = (middle // 2, middle // 4, middle - middle // 2 - middle // 4)  # high, low, shortcut
        high, low, _ = self.split
        self.fuse_conv = PointwiseConv(sum(in_channels), middle)
        self.high_order_branch = nn.ModuleList(
            [HypergraphBranch(high, num_hyperedges, num_heads) for _ in range(high_order_branches)]
        )
        self.high_order_fuse = PointwiseConv(high * high_order_branches, high)
        self.low_order_branch = nn.Sequential(*[CrossStage(low, low, 1, low) for _ in range(low_order_blocks)])
        self.final_fuse = PointwiseConv(middle, out_channels)

    def forward(self, maps: List[torch.Tensor]) -> torch.Tensor:
        size = maps[2].shape[-2:]
        fused = self.fuse_conv(torch.cat([m if i == 2 else resize(m, size) for i, m in enumerate(maps)], dim=1))
        high, low, shortcut = fused.split(self.split, dim=1)
        high = self.high_order_fuse(torch.cat([branch(high) for branch in self.high_order_branch], dim=1))
        return self.final_fuse(torch.cat((high, self.low_order_branch(low), shortcut), dim=1))


class GatedFusion(nn.Module):
    """x + gamma * context, a learned gain per channel starting at zero."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * context


class Backbone(nn.Module):
    """Stem and four stages, each stage a strided separable convolution and a cross-stage block:
    (b, dim, t, bands) -> four maps (b, STAGE_CHANNELS[k], t / 2^(k+2), bands or fewer).

    halve_bands_late: the last two stages also halve the bands (v2).
    """

    def __init__(self, in_channels: int, base_depth: int, halve_bands_late: bool):
        super().__init__()
        c2, c3, c4, c5 = STAGE_CHANNELS
        late_stride = 2 if halve_bands_late else (2, 1)
        self.stem = SeparableConv(in_channels, STEM_CHANNELS, stride=(2, 1))
        self.p2 = self._stage(STEM_CHANNELS, c2, base_depth, (2, 1))
        self.p3 = self._stage(c2, c3, 2 * base_depth, (2, 1))
        self.p4 = self._stage(c3, c4, 2 * base_depth, late_stride)
        self.p5 = self._stage(c4, c5, base_depth, late_stride)

    @staticmethod
    def _stage(c_in: int, c_out: int, blocks: int, stride: Size2d) -> nn.Sequential:
        return nn.Sequential(SeparableConv(c_in, c_out, stride=stride), CrossStageNarrow(c_out, c_out, blocks))

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        maps = []
        x = self.stem(x)
        for stage in (self.p2, self.p3, self.p4, self.p5):
            x = stage(x)
            maps.append(x)
        return maps


class Decoder(nn.Module):
    """Top-down path over the backbone maps: at each level the upsampled coarser result plus a projected
    skip, then the HyperACE context mixed in by a gate: four maps, context -> (b, STAGE_CHANNELS[0], h_0, w_0)."""

    def __init__(self, context_channels: int):
        super().__init__()
        # registered coarsest level first, as the checkpoints list them
        levels = list(zip((5, 4, 3, 2), reversed(STAGE_CHANNELS)))
        for level, channels in levels:
            setattr(self, f"h_to_d{level}", PointwiseConv(context_channels, channels))
        for level, channels in levels:
            setattr(self, f"fusion_d{level}", GatedFusion(channels))
        for level, channels in levels:
            setattr(self, f"skip_p{level}", PointwiseConv(channels, channels))
        c2, c3, c4, c5 = STAGE_CHANNELS
        self.up_d5 = CrossStageNarrow(c5, c4, 1)
        self.up_d4 = CrossStageNarrow(c4, c3, 1)
        self.up_d3 = CrossStageNarrow(c3, c2, 1)
        self.final_d2 = CrossStageNarrow(c2, c2, 1)

    def _with_context(self, level: int, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        projected = getattr(self, f"h_to_d{level}")(resize(context, x.shape[-2:]))
        return getattr(self, f"fusion_d{level}")(x, projected)

    def forward(self, maps: List[torch.Tensor], context: torch.Tensor) -> torch.Tensor:
        x = self._with_context(5, self.skip_p5(maps[3]), context)
        for level, skip in zip((4, 3, 2), reversed(maps[:3])):
            upsampled = getattr(self, f"up_d{level + 1}")(resize(x, skip.shape[-2:]))
            x = self._with_context(level, upsampled + getattr(self, f"skip_p{level}")(skip), context)
        return self.final_d2(x)


def _norm_silu(channels: int) -> Tuple[nn.Module, nn.Module]:
    return instance_norm(channels), nn.SiLU()


class TfcTdfBlock(nn.Module):
    """Time-frequency convolutions around a bottlenecked fully connected layer along frequency (TFC-TDF,
    Kim et al. 2023, arXiv:2306.09382), with a 1x1 shortcut: (b, c_in, h, f_bins) -> (b, c_out, h, f_bins)."""

    def __init__(self, c_in: int, c_out: int, f_bins: int, bottleneck: int = 4):
        super().__init__()
        self.tfc1 = nn.Sequential(*_norm_silu(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
        self.tdf = nn.Sequential(
            *_norm_silu(c_out),
            nn.Linear(f_bins, f_bins // bottleneck, bias=False),
            *_norm_silu(c_out),
            nn.Linear(f_bins // bottleneck, f_bins, bias=False),
        )
        self.tfc2 = nn.Sequential(*_norm_silu(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False))
        self.shortcut = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tfc1(x)
        return self.tfc2(y + self.tdf(y)) + self.shortcut(x)


class TfcTdf(nn.Module):
    def __init__(self, channels: int, blocks: int, f_bins: int):
        super().__init__()
        self.blocks = nn.Sequential(*[TfcTdfBlock(channels, channels, f_bins) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class FreqPixelShuffle(nn.Module):
    """Doubles the bands by moving channels into frequency: (b, c_in, h, w) -> (b, c_out, h, 2 w);
    with `tdf_bins` (v2), TFC-TDF blocks follow."""

    def __init__(self, c_in: int, c_out: int, tdf_bins: Optional[int] = None):
        super().__init__()
        self.conv = SeparableConv(c_in, 2 * c_out)
        self.out_conv = None if tdf_bins is None else TfcTdf(c_out, 2, tdf_bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = rearrange(self.conv(x), "b (c r) h w -> b c h (w r)", r=2)
        return x if self.out_conv is None else self.out_conv(x)


class UpsampleHead(nn.Module):
    """Four frequency pixel shuffles (bands x 16), resized to `out_bins`, then a convolution to
    SEGMENT_CHANNELS: (b, c, h, bands) -> (b, SEGMENT_CHANNELS, h, out_bins).

    v1: widths c, c/2, c/2, c/4 and a 1x1 output convolution; v2: c/2 .. c/16 with TFC-TDF blocks and 3x3.
    """

    def __init__(self, channels: int, out_bins: int, bands: int, version: int):
        super().__init__()
        self.out_bins = out_bins
        if version == 1:
            widths, tdf_bins, kernel = (channels, channels, channels // 2, channels // 2, channels // 4), [None] * 4, 1
        else:
            widths = tuple(channels // 2**k for k in range(5))
            tdf_bins, kernel = [bands * 2 ** (k + 1) for k in range(4)], 3
        for index in range(4):
            block = FreqPixelShuffle(widths[index], widths[index + 1], tdf_bins[index])
            setattr(self, f"block{index + 1}", block)
        self.final_conv = nn.Conv2d(widths[-1], SEGMENT_CHANNELS, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in (self.block1, self.block2, self.block3, self.block4):
            x = block(x)
        if x.shape[-1] != self.out_bins:
            x = resize(x, (x.shape[2], self.out_bins))
        return self.final_conv(x)


class HyperAceSegmentation(nn.Module):
    """(b, dim, t, bands) -> (b, SEGMENT_CHANNELS, t, out_bins): backbone, HyperACE, decoder, time restored,
    upsample head."""

    def __init__(self, dim: int, bands: int, out_bins: int, version: int, num_hyperedges: int, num_heads: int):
        super().__init__()
        high_order_branches, low_order_blocks = (3, 2) if version == 1 else (2, 1)
        context_channels = STAGE_CHANNELS[2]
        self.backbone = Backbone(dim, base_depth=2, halve_bands_late=version == 2)
        self.hyperace = HyperACE(
            STAGE_CHANNELS, context_channels, num_hyperedges, num_heads, high_order_branches, low_order_blocks
        )
        self.decoder = Decoder(context_channels)
        self.upsample_head = UpsampleHead(STAGE_CHANNELS[0], out_bins, bands, version)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.backbone(x)
        decoded = self.decoder(maps, self.hyperace(maps))
        return self.upsample_head(resize(decoded, (x.shape[2], decoded.shape[-1])))


class HyperAceMaskEstimator(MaskEstimator):
    """unwa's HyperACE residual head: the per-band MLP mask plus the HyperACE segmentation's output:
    (b, t, bands, dim) -> (b, t, sum(dim_inputs)).

    version: 1 or 2 (v2: bands halved in the late backbone stages, TFC-TDF blocks in the upsample head).
    num_hyperedges: default 16 (v1) or 32 (v2). num_heads: the hyperedge similarity's heads (not in the
    weights; 8 in the published checkpoints).
    """

    def __init__(
        self,
        dim: int,
        dim_inputs: Sequence[int],
        hidden_layers: int,
        mlp_expansion_factor: int = 4,
        norm_each_band: bool = False,
        *,
        version: int,
        num_hyperedges: Optional[int] = None,
        num_heads: int = 8,
    ):
        super().__init__(dim, dim_inputs, hidden_layers, mlp_expansion_factor, norm_each_band)
        values = sum(self.dim_inputs)
        if values % SEGMENT_CHANNELS:
            raise ValueError(
                f"a HyperACE mask head gives {SEGMENT_CHANNELS} values per bin (stereo real/imag), but the bands "
                f"hold {values} mask values, not a multiple of {SEGMENT_CHANNELS}: use it with stereo=True"
            )
        num_hyperedges = DEFAULT_HYPEREDGES[version] if num_hyperedges is None else num_hyperedges
        self.segm = HyperAceSegmentation(
            dim, len(self.dim_inputs), values // SEGMENT_CHANNELS, version, num_hyperedges, num_heads
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.segm(rearrange(x, "b t f d -> b d t f"))
        return super().forward(x) + rearrange(residual, "b c t f -> b t (f c)")
