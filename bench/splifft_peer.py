"""splifft 0.0.9's BS-RoFormer with a HyperACE v2 mask head as a benchmark peer of ours (bench/speed.py, row H).

splifft's model maps a spectrogram to masks; `SplifftSeparator` puts it between the same STFT and iSTFT as
ours, so both take audio and give stems. Its state dict is the inner model's, so weights move between the
two as they are.
"""

import torch
from einops import rearrange
from torch import nn

import references


class SplifftSeparator(nn.Module):
    """(b, s, t) audio -> (b, s, t) one stem, through splifft's mask model."""

    def __init__(self, net: nn.Module, n_fft: int, hop_length: int):
        super().__init__()
        self.net, self.n_fft, self.hop_length = net, n_fft, hop_length

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        batch, channels, length = audio.shape
        window = torch.hann_window(self.n_fft).to(audio)
        waves = audio.reshape(batch * channels, length)
        spec = torch.stft(waves, self.n_fft, self.hop_length, window=window, return_complex=True)
        spec = rearrange(torch.view_as_real(spec), "(b s) f t c -> b (f s) t c", s=channels)
        masks = torch.view_as_complex(self.net(spec)[:, 0].contiguous())
        stem = rearrange(torch.view_as_complex(spec) * masks, "b (f s) t -> (b s) f t", s=channels)
        out = torch.istft(stem, self.n_fft, self.hop_length, window=window, length=length)
        return rearrange(out, "(b s) t -> b s t", b=batch)


def build(implementation: str, kwargs: dict, state_dict=None) -> nn.Module:
    """Ours or splifft's HyperACE v2 model of the given size (stereo, default bands, n_fft 2048); kwargs: ours,
    plus chunk_size, the input length (splifft's rotary tables are built for it)."""
    from bs_roformer import BSRoformer
    from bs_roformer.models.bs_roformer import DEFAULT_FREQS_PER_BANDS

    kwargs = dict(kwargs)
    samples = kwargs.pop("chunk_size")
    hop = kwargs.get("stft_hop_length", 441)
    if implementation == "ours":
        ours = BSRoformer(**kwargs, stereo=True, stft_hop_length=hop, mask_estimator="hyperace_residual_v2", zero_dc=False)
        if state_dict is not None:
            from bs_roformer.inference.loading import load_weights

            load_weights(ours, state_dict)
        return ours
    with references.splifft_bs_roformer() as splifft:
        params = splifft.BSRoformerParams(
            chunk_size=samples, output_stem_names=("instrum",), dim=kwargs["dim"], depth=kwargs["depth"],
            band_config=splifft.FixedBandsConfig(kind="fixed", freqs_per_bands=tuple(DEFAULT_FREQS_PER_BANDS)),
            stft_hop_length=hop, stereo=True, time_transformer_depth=kwargs.get("time_transformer_depth", 2),
            freq_transformer_depth=kwargs.get("freq_transformer_depth", 2),
            mask_estimator=splifft.HyperAceResidualV2MaskEstimatorConfig(kind="hyperace_residual_v2"),
        )
        return SplifftSeparator(splifft.BSRoformer(params), 2048, hop)
