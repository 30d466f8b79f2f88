"""Recognising a frame-transformer checkpoint (V1 or V3) and reading its architecture from the tensors
(registered in `bs_roformer.compat.RECOGNISERS`).

What the weights show: input and output channels, the first level's channels, the feed-forward expansion,
the STFT size (from the bins a norm covers), the number of V3 layers, the version (which keys exist), and
the head count, through the length of the rotary frequency buffers (head width / 2) that the reference
saves. What they do not show is listed in the notes and assumed: the hop (n_fft / 2: 1024 for 2048) and
the sample rate (44100), the reference scripts'; and the head count when the rotary buffers are missing
(V1: the published 8; V3: train3.py's 16). A YAML config or `load_model(..., model_overrides={...})`
overrides them.
"""

import math
import re
from typing import Any, Dict, Mapping, Optional

import torch

from ..compat import Inferred
from .frame_transformer import PUBLISHED_V1, TRAIN3_V3

V1_KEY, V3_KEY = "enc0_transformer.embed.weight", "transformer.0.attn.q_proj.weight_dw"
MODEL_TYPE_V1, MODEL_TYPE_V3 = "frame_transformer", "frame_transformer_v3"


def recognise_frame_transformer(state_dict: Mapping[str, torch.Tensor]) -> Optional[Inferred]:
    """The model type, constructor keywords and notes on what was assumed of a frame-transformer state dict;
    None for other weights."""
    if V1_KEY not in state_dict and not (V3_KEY in state_dict and "embed.weight" in state_dict):
        return None
    shape = lambda key: tuple(state_dict[key].shape)  # noqa: E731
    if V1_KEY in state_dict:
        model_type, preset = MODEL_TYPE_V1, PUBLISHED_V1
        max_bin = shape("enc0_transformer.norm1.norm.weight")[0]
        kwargs: Dict[str, Any] = dict(
            in_channels=shape(V1_KEY)[1],
            out_channels=shape("out")[0],
            channels=shape("enc1.body.0.conv1.weight")[0],
            expansion=shape("enc0_transformer.conv1.weight_pw")[1] // max_bin,
        )
    else:
        model_type, preset = MODEL_TYPE_V3, TRAIN3_V3
        channels, in_channels = shape("embed.weight")[:2]
        max_bin = shape("transformer.0.norm1.weight")[-1]
        layers = {int(m.group(1)) for key in state_dict if (m := re.match(r"transformer\.(\d+)\.", key))}
        kwargs = dict(
            in_channels=in_channels,
            out_channels=shape("out.weight")[0],
            channels=channels,
            expansion=shape("transformer.0.conv1.weight")[0] // channels,
            num_layers=len(layers),
        )
    rotary = "enc0_transformer.attn" if model_type == MODEL_TYPE_V1 else "transformer.0.attn"
    heads = _heads_from_rotary(state_dict.get(f"{rotary}.rotary_embedding.freqs"), max_bin)
    notes = []
    if heads is None:
        # heads must divide the features of every attention: V1's deepest level has n_fft / 64
        heads = math.gcd(preset.num_heads, max_bin // 32 if model_type == MODEL_TYPE_V1 else max_bin)
        source = "the published V1 checkpoint's" if model_type == MODEL_TYPE_V1 else "train3.py's default"
        fitted = "" if heads == preset.num_heads else f", the largest divisor of {preset.num_heads} that fits this STFT size"
        notes.append(
            f"num_heads={heads} assumed ({source}{fitted}; without rotary buffers the head count does not show in "
            "the weights): if yours differs, pass a config or model_overrides={'num_heads': N}"
        )
    kwargs.update(n_fft=2 * max_bin, num_heads=heads, hop_length=max_bin, sample_rate=preset.sample_rate)
    notes += [
        f"hop_length={max_bin} (n_fft / 2) and sample_rate={preset.sample_rate} assumed (the reference scripts'; not in the weights)",
    ]
    return Inferred(model_type, kwargs, notes)


def _heads_from_rotary(freqs, features: int):
    """The head count whose head width has len(freqs) rotated pairs (an odd width leaves one feature), or None."""
    if freqs is None:
        return None
    pairs = freqs.shape[0]
    return next((features // width for width in (2 * pairs, 2 * pairs + 1) if width and features % width == 0), None)
