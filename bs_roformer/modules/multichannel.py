"""Multichannel layers of the frame-transformer: every channel of a (b, c, features, frames) spectrogram
has its own position-wise linear map or layer-norm affine over its features (the frequency bins).

Parameter names and shapes are those of carperbr/frame-transformer, so its checkpoints load unchanged.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class MultichannelLinear(nn.Module):
    """Per-channel linear maps over features, then an optional mix across channels:
    (b, in_channels, in_features, frames) -> (b, out_channels, out_features, frames).

    positionwise: each channel's own (out_features, in_features) matrix (`weight_pw`); always present when
        the feature count changes. depthwise: an (out_channels, in_channels) mix of the channels
        (`weight_dw`); always present when the channel count changes. bias: a bias for each.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_features: int,
        out_features: int,
        positionwise: bool = True,
        depthwise: bool = False,
        bias: bool = False,
    ):
        super().__init__()
        self.weight_pw = self.bias_pw = self.weight_dw = self.bias_dw = None
        if in_features != out_features or positionwise:
            self.weight_pw = _uniform(in_features, in_channels, out_features, in_features)
            if bias:
                self.bias_pw = _uniform(in_features, in_channels, out_features, 1)
        if in_channels != out_channels or depthwise:
            self.weight_dw = _uniform(in_channels, out_channels, in_channels)
            if bias:
                self.bias_dw = _uniform(in_channels, out_channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight_pw is not None:
            # (b, c, w, i) @ (c, i, o): frames as the GEMM's rows, as the reference computes it. The other
            # orientation, (c, o, i) @ (b, c, i, w), is the same product, but with a frame count that is not a
            # multiple of the kernel's block it runs 1.5x slower on the CPU. The result is a (b, c, o, w) view
            # of frames-major memory, which the next linear or layer norm reads without a copy.
            frames_major = x.transpose(2, 3)
            if self.weight_pw.shape[0] == 1:  # one channel (V1): one GEMM over every frame of the batch
                x = F.linear(frames_major, self.weight_pw[0]).transpose(2, 3)
            else:
                x = torch.matmul(frames_major, self.weight_pw.transpose(1, 2)).transpose(2, 3)
            if self.bias_pw is not None:
                x = x + self.bias_pw
        if self.weight_dw is not None:
            x = torch.einsum("b c f w, o c -> b o f w", x, self.weight_dw)
            if self.bias_dw is not None:
                x = x + self.bias_dw
        return x


def _uniform(fan_in: int, *shape: int) -> nn.Parameter:
    bound = 1 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class FrameNorm(nn.Module):
    """Layer norm over the features of every frame, one affine shared by the channels (V1):
    (b, c, features, frames) -> same, in the input's memory layout. Weights at `norm.weight`, `norm.bias` as
    in the reference."""

    def __init__(self, features: int):
        super().__init__()
        self.norm = nn.LayerNorm(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, eps = self.norm.weight, self.norm.bias, self.norm.eps
        if x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last) and not torch.is_grad_enabled():
            # channels-last memory (V1's U-Net at inference): layer_norm needs the features innermost, and the
            # transposing copies there and back would cost twice the normalisation itself. In this memory each
            # item is a contiguous (features, frames * c) matrix whose columns are to be normalised: what
            # batch_norm's batch statistics do (biased variance, as layer_norm's), in one fused pass.
            features_first = x.permute(0, 2, 3, 1)  # (b, features, frames, c), contiguous
            out = torch.empty_like(features_first)
            for item, out_item in zip(features_first, out):
                normed = F.batch_norm(item.reshape(item.shape[0], -1), None, None, training=True, eps=eps)
                torch.addcmul(bias[:, None], normed, weight[:, None], out=out_item.view(item.shape[0], -1))
            return out.permute(0, 3, 1, 2)
        return F.layer_norm(x.transpose(2, 3), x.shape[2:3], weight, bias, eps).transpose(2, 3)


class MultichannelLayerNorm(nn.Module):
    """Layer norm over the features of every frame, with an affine of each channel's own (V3):
    (b, channels, features, frames) -> same. weight, bias: (channels, 1, features); buffers of ones and
    zeros when not `trainable`."""

    def __init__(self, channels: int, features: int, eps: float = 1e-5, trainable: bool = True):
        super().__init__()
        self.eps = eps
        weight, bias = torch.ones(channels, 1, features), torch.zeros(channels, 1, features)
        if trainable:
            self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.layer_norm(x.transpose(2, 3), x.shape[2:3], eps=self.eps)  # (b, c, frames, features)
        return (normed * self.weight + self.bias).transpose(2, 3)

