"""Frame-transformer separators (carperbr/frame-transformer, commit 90ab4e3): magnitude-spectrogram masking
networks whose transformers attend across frames.

    audio (b, s, t) -> |STFT| / max (b, s, n_fft / 2, frames) -> network -> sigmoid: the instruments mask m
      -> vocals = (1 - m) X, instruments = m X -> iSTFT -> stems (b, 2, s, t)

- `FrameTransformer` (V1, `frame_transformer_thin.py`, the version with a published checkpoint): a U-Net
  that downsamples only along frequency (Jansson et al. 2017; MMDenseLSTM-like, Takahashi et al. 2018),
  with a one-channel frame transformer before each encoder and after each decoder.
- `FrameTransformerV3` (`libft/frame_transformer.py`): a 3x3-conv embedding, then multichannel transformer
  layers with RealFormer residual attention scores and a 3x3-conv feed-forward; no U-Net.

Names, shapes and order of the state dict are the reference's, so its checkpoints load with strict=True.
"""

import math
from dataclasses import fields, replace
from typing import Any, ClassVar, Mapping, Optional, Tuple, Union

import torch
from einops import rearrange
from torch import nn

from ..modules.frame_attention import MultichannelMultiheadAttention
from ..modules.multichannel import FrameNorm, MultichannelLayerNorm, MultichannelLinear
from ..modules.stft import centred_stft, reflect_indices, tail_frames
from .config import ModelConfig, check_positive_integers, model_config, setting

# the reference's Separator: crops of 1024 frames with 512 frames of context on each side; its TTA averages
# the masks of crops of these sizes, without context
CROP_SIZE = 1024
CROP_PADDING = 512
TTA_CROP_SIZES = (256, 512, 1024, 2048)


@model_config
class FrameTransformerConfig(ModelConfig):
    """Settings of `FrameTransformer` (V1); defaults are the reference constructor's (see PUBLISHED_V1)."""

    model_type: ClassVar[str] = "frame_transformer"
    in_channels: int = setting(2, "audio channels in (magnitudes; 4 in the reference's phase variant)")
    out_channels: int = setting(2, "mask channels out (one per audio channel)")
    channels: int = setting(2, "channels of the first U-Net level (V1's levels have 1, 2, 4, 6, 8, 10 times as many; V3: every layer's)")
    dropout: float = setting(0.1, "dropout after attention and feed-forward")
    n_fft: int = setting(2048, "STFT size; the network sees its n_fft / 2 lowest bins")
    num_heads: int = setting(4, "attention heads (they must divide the features of every attention)")
    expansion: int = setting(4, "feed-forward width, times the features (V3: times the channels)")
    hop_length: Optional[int] = setting(None, "STFT hop; None: n_fft / 2 (the reference scripts' 1024 for 2048)")
    sample_rate: int = setting(44100, "audio sample rate (not in the reference's constructor)")

    def validate(self) -> None:
        super().validate()
        check_positive_integers(
            in_channels=self.in_channels, out_channels=self.out_channels, channels=self.channels,
            num_heads=self.num_heads, expansion=self.expansion, sample_rate=self.sample_rate,
        )
        hop = self.n_fft // 2 if self.hop_length is None else self.hop_length
        if self.n_fft < 2 or self.n_fft % 2 or not 0 < hop <= self.n_fft:
            raise ValueError(f"n_fft must be even and 0 < hop_length <= n_fft; got {self.n_fft} and {self.hop_length}")


@model_config
class FrameTransformerV3Config(FrameTransformerConfig):
    """Settings of `FrameTransformerV3`."""

    model_type: ClassVar[str] = "frame_transformer_v3"
    num_layers: int = setting(15, "transformer layers")
    repeats: int = setting(1, "unused by the reference's forward; kept so its settings are accepted")
    num_embeddings: int = setting(1024, "unused by the reference's forward; kept so its settings are accepted")

    def validate(self) -> None:
        super().validate()
        check_positive_integers(num_layers=self.num_layers)


# the settings of the published V1 checkpoint (`local.87.model.pth`, inference_thin2.py's defaults)
PUBLISHED_V1 = FrameTransformerConfig(channels=8, num_heads=8, expansion=24, dropout=0.1, n_fft=2048, hop_length=1024)
# train3.py's defaults for V3 (no V3 checkpoint was published)
TRAIN3_V3 = FrameTransformerV3Config(channels=8, num_heads=16, expansion=4, num_layers=8, dropout=0.1, n_fft=2048, hop_length=1024)


class SquaredReLU(nn.Module):
    """relu(x)^2 (So et al. 2021, Primer). Applied to temporaries only: without autograd it works in place,
    which spares the feed-forward's widest tensors (24 x the features at the published size) twice over."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return torch.relu(x).square()
        return torch.relu_(x).square_()


class _FrameTransformerBase(nn.Module):
    """The audio side shared by V1 and V3: STFT magnitudes in, the instruments mask, two stems out.

    forward: (b, t) or (b, s, t) audio -> (b, 2, s, t) stems [vocals, instruments]; with `target`, the
    reference's training loss instead. Subclasses define `mask_logits`.
    """

    stem_names = ("vocals", "instruments")
    num_stems = 2
    # what training needs of a dataset's stems: the vocals (the instrumental is the rest of the mix)
    target_stems = ("vocals",)
    match_input_audio_length = True
    # the inference code separates this family in crops of frames with context (inference/crops.py)
    crop_size, crop_padding, tta_crop_sizes = CROP_SIZE, CROP_PADDING, TTA_CROP_SIZES

    def _init_settings(self, values: Mapping[str, Any]) -> None:
        """Check and keep the constructor's keywords (`values`: its locals) as `self.config`, hop resolved."""
        config = self.Config(**{field.name: values[field.name] for field in fields(self.Config)})
        if config.hop_length is None:
            config = replace(config, hop_length=config.n_fft // 2)
        self.config = config
        self.max_bin = config.n_fft // 2
        self.output_bin = config.n_fft // 2 + 1
        self.in_channels, self.out_channels = config.in_channels, config.out_channels
        self.audio_channels = config.in_channels
        self.stereo = config.in_channels == 2
        self.sample_rate = config.sample_rate
        self.stft_n_fft, self.stft_hop_length = config.n_fft, config.hop_length
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @classmethod
    def from_config(cls, config: FrameTransformerConfig):
        """The model of a config (`Config.from_msst(yaml["model"])`)."""
        return cls(**{field.name: getattr(config, field.name) for field in fields(config)})

    def mask_logits(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(b, in_channels, n_fft / 2, frames) normalised magnitudes -> (b, out_channels, n_fft / 2, frames)
        mask logits: the reference model's forward."""
        raise NotImplementedError

    def crop_masks(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(b, s, n_fft / 2 + 1, frames) magnitudes scaled to at most 1 -> (b, 2, s, n_fft / 2 + 1, frames)
        masks of [vocals, instruments]; the Nyquist bin goes to the vocals, as in the reference."""
        if self.in_channels != self.out_channels:
            raise ValueError(
                f"separating audio needs in_channels == out_channels (one mask per audio channel); this model has "
                f"{self.in_channels} in and {self.out_channels} out (the reference's phase variant is not supported)"
            )
        mask = torch.sigmoid(self.mask_logits(magnitude[:, :, : self.max_bin].to(self.window.dtype)).float())
        mask = nn.functional.pad(mask, (0, 0, 0, 1))  # COMPAT: the reference gives the Nyquist bin mask 0
        return torch.stack([1 - mask, mask], dim=1)

    def spectrogram(self, audio: torch.Tensor, extra_frames: int = 0) -> torch.Tensor:
        """(b, s, t) audio -> (b, s, n_fft / 2 + 1, 1 + t // hop + extra_frames) complex: a centred STFT with
        reflect padding (librosa < 0.9's, which the reference pins; also for audio shorter than the padding)."""
        n_fft, hop = self.stft_n_fft, self.stft_hop_length
        frames = 1 + audio.shape[-1] // hop + extra_frames
        positions = reflect_indices(-(n_fft // 2), (frames - 1) * hop + n_fft // 2, audio.shape[-1])
        return centred_stft(audio[..., positions.to(audio.device)], n_fft, hop, self.window)

    def forward(
        self, raw_audio: torch.Tensor, target: Optional[torch.Tensor] = None, return_loss_breakdown: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, Tuple[torch.Tensor]]]:
        """Separate `raw_audio` (b, t) or (b, s, t) into (b, 2, s, t) [vocals, instruments]; with `target`,
        return the training loss: L1 between the masked and the instrumental magnitudes, both divided by
        the mix's largest magnitude (targets clipped to 1), over the n_fft / 2 bins the network sees.

        target: (b, 2, s, t) [vocals, instruments], or (b, s, t) vocals (instruments = mix - vocals).
        Each item is normalised by its own maximum; the separator normalises by the whole track's.
        """
        audio = self._check_audio(raw_audio)
        length = audio.shape[-1]
        own_frames = 1 + length // self.stft_hop_length
        spec = self.spectrogram(audio, tail_frames(self.stft_n_fft, self.stft_hop_length))
        magnitude = spec[..., :own_frames].abs()
        scale = magnitude.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)  # silence stays silent
        masks = self.crop_masks(magnitude / scale)  # (b, 2, s, f, frames)
        if target is not None:
            instruments = self._instrumental_target(target, audio)
            wanted = (self.spectrogram(instruments)[..., : self.max_bin, :].abs() / scale).clamp(0, 1)
            loss = nn.functional.l1_loss((magnitude / scale)[:, :, : self.max_bin] * masks[:, 1, :, : self.max_bin], wanted)
            return (loss, (loss,)) if return_loss_breakdown else loss
        # the frames past the model's own reconstruct the last partial hop; they take the last frame's mask
        masks = torch.cat([masks, masks[..., -1:].expand(*masks.shape[:-1], spec.shape[-1] - own_frames)], dim=-1)
        stems_spec = masks * spec[:, None]
        flat = rearrange(stems_spec, "b n s f w -> (b n s) f w")
        window = self.window.to(flat.real)
        waves = torch.istft(flat, self.stft_n_fft, self.stft_hop_length, window=window, length=length)
        return rearrange(waves, "(b n s) t -> b n s t", b=audio.shape[0], n=2)

    def _check_audio(self, raw_audio: torch.Tensor) -> torch.Tensor:
        """(b, t) or (b, s, t) floating-point audio as (b, s, t); any length (short audio is reflect-padded)."""
        if not torch.is_tensor(raw_audio) or not raw_audio.is_floating_point():
            raise TypeError(f"audio must be a floating-point tensor (batch, channels, time), got {getattr(raw_audio, 'dtype', type(raw_audio))}")
        audio = raw_audio[:, None] if raw_audio.ndim == 2 else raw_audio
        if audio.ndim != 3 or audio.shape[1] != self.audio_channels or audio.shape[-1] == 0:
            raise ValueError(
                f"this model expects audio of shape (batch, {self.audio_channels}, time) with time > 0"
                f"{' or (batch, time)' if self.audio_channels == 1 else ''}; got {tuple(raw_audio.shape)}"
            )
        return audio

    def _instrumental_target(self, target: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(target) or not target.is_floating_point():
            raise TypeError(f"target must be a floating-point tensor, got {getattr(target, 'dtype', type(target))}")
        if target.ndim == 2 and audio.shape[1] == 1:
            target = target[:, None]
        if tuple(target.shape) == tuple(audio.shape):  # vocals: the rest is the instrumental
            return audio - target
        if tuple(target.shape) == (audio.shape[0], 2, *audio.shape[1:]):
            return target[:, 1]
        raise ValueError(
            f"target must be the vocals {tuple(audio.shape)} or [vocals, instruments] "
            f"{(audio.shape[0], 2, *audio.shape[1:])} for audio of shape {tuple(audio.shape)}; got {tuple(target.shape)}"
        )


# --- V1 ------------------------------------------------------------------------------------------------

class ResBlock(nn.Module):
    """Pre-norm residual block of two 3x3 convs, optionally halving the frequency axis:
    (b, in_channels, features, w) -> (b, out_channels, features or features / 2, w)."""

    def __init__(self, in_channels: int, out_channels: int, features: int, downsample: bool = False):
        super().__init__()
        stride = (2, 1) if downsample else 1
        self.activate = SquaredReLU()
        self.norm = FrameNorm(features)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, stride=stride, bias=False)
        if in_channels != out_channels or downsample:
            self.identity = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)
        else:
            self.identity = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            # channels-last: with a few channels per level, oneDNN's 3x3 convolutions run ~3x faster in it than
            # in NCHW on the CPU, and the norm reads it without copies; the output stays channels-last, and so
            # does the U-Net after the first block. Not with autograd: torch 2.13's CPU backward of the strided
            # 1x1 `identity` on channels-last input crashes the process.
            x = x.contiguous(memory_format=torch.channels_last)
        return self.conv2(self.activate(self.conv1(self.norm(x)))) + self.identity(x)


class FrameEncoder(nn.Module):
    """A U-Net encoder level: residual blocks, the last one halving the frequency axis (if `downsample`)."""

    def __init__(self, in_channels: int, out_channels: int, features: int, downsample: bool = True, num_blocks: int = 1):
        super().__init__()
        self.body = nn.Sequential(*[
            ResBlock(in_channels if i == 0 else out_channels, out_channels, features, downsample=downsample and i == num_blocks - 1)
            for i in range(num_blocks)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FrameDecoder(nn.Module):
    """A U-Net decoder level: double the frequency axis (bilinear, corners aligned), concatenate the skip,
    residual blocks. in_channels: channels of the input; the skip brings out_channels more."""

    def __init__(self, in_channels: int, out_channels: int, features: int, num_blocks: int = 1):
        super().__init__()
        self.upsample = nn.Upsample(scale_factor=(2, 1), mode="bilinear", align_corners=True)
        self.body = nn.Sequential(*[
            ResBlock(in_channels + out_channels if i == 0 else out_channels, out_channels, features) for i in range(num_blocks)
        ])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat((self.upsample(x), skip), dim=1))


class _FrameFeedForward(nn.Module):
    """The squared-ReLU feed-forward over features shared by V1's encoder and decoder transformers
    (`norm2`, `conv1`, `conv2` are registered by the subclasses, in the reference's order)."""

    def feed_forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.dropout(self.conv2(self.activate(self.conv1(self.norm2(h)))))


class FrameTransformerEncoder(_FrameFeedForward):
    """Embed the channels into one (1x1 conv), pre-norm self-attention across frames and feed-forward;
    (b, channels, features, w) -> (the input with the result appended as one more channel, the result)."""

    def __init__(self, channels: int, features: int, dropout: float = 0.1, expansion: int = 4, num_heads: int = 8):
        super().__init__()
        self.activate = SquaredReLU()
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Conv2d(channels, 1, 1)
        self.norm1 = FrameNorm(features)
        self.attn = MultichannelMultiheadAttention(1, num_heads, features)
        self.norm2 = FrameNorm(features)
        self.conv1 = MultichannelLinear(1, 1, features, features * expansion)
        self.conv2 = MultichannelLinear(1, 1, features * expansion, features)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(x)
        h = h + self.dropout(self.attn(self.norm1(h))[0])
        h = self.feed_forward(h)
        return torch.cat((x, h), dim=1), h


class FrameTransformerDecoder(_FrameFeedForward):
    """Like the encoder, with cross-attention to the matching encoder transformer's output in between;
    (b, channels, features, w), memory (b, 1, features, w) -> (b, channels + 1, features, w)."""

    def __init__(self, channels: int, features: int, dropout: float = 0.1, expansion: int = 4, num_heads: int = 8):
        super().__init__()
        self.activate = SquaredReLU()
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Conv2d(channels, 1, 1)
        self.norm1 = FrameNorm(features)
        self.attn1 = MultichannelMultiheadAttention(1, num_heads, features)
        self.norm2 = FrameNorm(features)
        self.attn2 = MultichannelMultiheadAttention(1, num_heads, features)
        # COMPAT: frame-transformer V1 registers norm3 but never uses it; norm1 serves both attentions
        self.norm3 = FrameNorm(features)
        self.conv1 = MultichannelLinear(1, 1, features, features * expansion)
        self.conv2 = MultichannelLinear(1, 1, features * expansion, features)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        h = h + self.dropout(self.attn1(self.norm1(h))[0])
        h = h + self.dropout(self.attn2(self.norm1(h), memory=memory)[0])
        h = self.feed_forward(h)
        return torch.cat((x, h), dim=1)


# channels of U-Net levels 1..6, in units of `channels`
LEVEL_WIDTHS = (1, 2, 4, 6, 8, 10)


class FrameTransformer(_FrameTransformerBase):
    """Frame-transformer V1: (b, t) or (b, s, t) audio -> (b, 2, s, t) [vocals, instruments].

    Keywords are the reference's (`frame_transformer_thin.FrameTransformer`), with its defaults, plus the
    STFT hop and sample rate; `FrameTransformer.published()` builds the published checkpoint's model.
    See `FrameTransformerConfig` for their meaning.
    """

    Config = FrameTransformerConfig

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        channels: int = 2,
        dropout: float = 0.1,
        n_fft: int = 2048,
        num_heads: int = 4,
        expansion: int = 4,
        *,
        hop_length: Optional[int] = None,
        sample_rate: int = 44100,
    ):
        super().__init__()
        self._init_settings(locals())
        if n_fft < 64 or n_fft % 64:
            raise ValueError(f"n_fft must be a multiple of 64 (the V1 U-Net halves n_fft / 2 five times), got {n_fft}")
        max_bin = self.max_bin
        transformer = dict(dropout=dropout, expansion=expansion, num_heads=num_heads)
        widths = [channels * width for width in LEVEL_WIDTHS]

        # registered in the reference's order, which is its state dict's order
        self.enc0_transformer = FrameTransformerEncoder(in_channels, max_bin, **transformer)
        previous = in_channels
        for level, width in enumerate(widths, start=1):
            features = max_bin >> max(level - 2, 0)  # the input's bins: level 1 keeps them, later levels halve
            setattr(self, f"enc{level}", FrameEncoder(previous + 1, width, features, downsample=level > 1))
            setattr(self, f"enc{level}_transformer", FrameTransformerEncoder(width, max_bin >> (level - 1), **transformer))
            previous = width
        for level in range(5, 0, -1):
            features = max_bin >> (level - 1)
            setattr(self, f"dec{level}", FrameDecoder(widths[level] + 2, widths[level - 1], features))
            setattr(self, f"dec{level}_transformer", FrameTransformerDecoder(widths[level - 1], features, **transformer))
        bound = 1 / math.sqrt(channels + 1)
        self.out = nn.Parameter(torch.empty(out_channels, channels + 1).uniform_(-bound, bound))

    @classmethod
    def published(cls, **overrides: Any) -> "FrameTransformer":
        """The model of the published V1 checkpoint (channels 8, heads 8, expansion 24, n_fft 2048)."""
        return cls(**{**PUBLISHED_V1.to_msst(), **overrides})

    def mask_logits(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(b, in_channels, n_fft / 2, frames) -> (b, out_channels, n_fft / 2, frames) mask logits."""
        skips = []
        h, _ = self.enc0_transformer(magnitude)
        for level in range(1, 7):
            h, memory = getattr(self, f"enc{level}_transformer")(getattr(self, f"enc{level}")(h))
            skips.append((h, memory))
        for level in range(5, 0, -1):
            skip, memory = skips[level - 1]
            h = getattr(self, f"dec{level}_transformer")(getattr(self, f"dec{level}")(h, skip), memory)
        return torch.einsum("b c f w, o c -> b o f w", h, self.out)


# --- V3 ------------------------------------------------------------------------------------------------

class FrameTransformerV3Layer(nn.Module):
    """Multichannel layer norm, multichannel attention across frames (projections mixing channels,
    residual scores), and a 3x3-conv feed-forward expanding the channels:
    (b, channels, features, w), previous scores -> (b, channels, features, w), scores."""

    def __init__(self, channels: int, features: int, dropout: float = 0.1, expansion: int = 4, num_heads: int = 8):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm1 = MultichannelLayerNorm(channels, features)
        self.attn = MultichannelMultiheadAttention(
            channels, num_heads, features, depthwise=True, out_name="o_proj", residual_scores=True
        )
        self.norm2 = MultichannelLayerNorm(channels, features)
        self.conv1 = nn.Conv2d(channels, channels * expansion, kernel_size=3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels * expansion, channels, kernel_size=3, padding=1, bias=False)
        self.activate = SquaredReLU()

    def forward(self, x: torch.Tensor, previous_scores: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        z, scores = self.attn(self.norm1(x), previous_scores=previous_scores)
        h = x + self.dropout(z)
        h = h + self.dropout(self.conv2(self.activate(self.conv1(self.norm2(h)))))
        return h, scores


class FrameTransformerV3(_FrameTransformerBase):
    """Frame-transformer V3: (b, t) or (b, s, t) audio -> (b, 2, s, t) [vocals, instruments].

    Keywords are the reference's (`libft.frame_transformer.FrameTransformer`), with its defaults, plus the
    STFT hop and sample rate; see `FrameTransformerV3Config`. `FrameTransformerV3.train3()` builds the
    model of the reference's training script.
    """

    Config = FrameTransformerV3Config

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 2,
        channels: int = 2,
        dropout: float = 0.1,
        n_fft: int = 2048,
        num_heads: int = 4,
        expansion: int = 4,
        num_layers: int = 15,
        repeats: int = 1,
        num_embeddings: int = 1024,
        *,
        hop_length: Optional[int] = None,
        sample_rate: int = 44100,
    ):
        super().__init__()
        self._init_settings(locals())
        self.channels, self.repeats = channels, repeats
        self.embed = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False)
        self.transformer = nn.ModuleList([
            FrameTransformerV3Layer(channels, self.max_bin, dropout=dropout, expansion=expansion, num_heads=num_heads)
            for _ in range(num_layers)
        ])
        self.out = nn.Conv2d(channels, out_channels, kernel_size=1, bias=False)

    @classmethod
    def train3(cls, **overrides: Any) -> "FrameTransformerV3":
        """The model train3.py builds by default (channels 8, heads 16, expansion 4, 8 layers)."""
        return cls(**{**TRAIN3_V3.to_msst(), **overrides})

    def mask_logits(self, magnitude: torch.Tensor) -> torch.Tensor:
        """(b, in_channels, n_fft / 2, frames) -> (b, out_channels, n_fft / 2, frames) mask logits."""
        h, scores = self.embed(magnitude), None
        for layer in self.transformer:
            h, scores = layer(h, scores)
        return self.out(h)
