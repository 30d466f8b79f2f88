"""BS-Conformer and Mel-Band Conformer against MSST's bs_conformer.py / mel_band_conformer.py on random
weights: keys, order and shapes; outputs (batch norm with running statistics); training losses, gradients
and the running statistics a training step leaves; recognition from a bare checkpoint and from a YAML."""

import pytest
import torch

import references
from bs_roformer import BSConformer, MelBandConformer, load_model
from bs_roformer.inference.checkpoint import infer_config
from bs_roformer.inference.config import model_from_config, read_config
from helpers import SMALL_BANDS, SMALL_STFT, TINY, assert_relative_close, assert_same_layout, make_audio, perturb_
from test_attention_variants import LENGTH, assert_same_step, save

CONFORMER = dict(
    {key: value for key, value in TINY.items() if not key.endswith("transformer_depth")},
    time_conformer_depth=1, freq_conformer_depth=2, ff_mult=2, conv_expansion_factor=2, conv_kernel_size=7,
    attn_dropout=0.0, ff_dropout=0.0, stereo=True, num_stems=2, **SMALL_STFT,
)
CASES = {
    "bs": ("bs_conformer", "BSConformer", BSConformer, dict(freqs_per_bands=SMALL_BANDS)),
    "bs-linear": ("bs_conformer", "BSConformer", BSConformer, dict(freqs_per_bands=SMALL_BANDS, linear_conformer_depth=1)),
    # a 1024 window: its loss hop is a quarter window in MSST's Mel-Band Conformer (not 147)
    "mel": ("mel_band_conformer", "MelBandConformer", MelBandConformer,
            dict(num_bands=16, mask_estimator_depth=2, multi_stft_resolutions_window_sizes=(1024, 256))),
}


def reference_model(case):
    module_name, class_name, _, extra = CASES[case]
    torch.manual_seed(0)
    ref = perturb_(getattr(getattr(references.msst_bs_roformer_family(), module_name), class_name)(**{**CONFORMER, **extra}))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # batch norms with statistics of their own, as after training
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.weight.add_(0.1 * torch.randn(module.weight.shape, generator=generator))
                module.running_mean.normal_(0.0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return ref


def running_statistics(model):
    return torch.cat([torch.cat([m.running_mean, m.running_var]) for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)])


@pytest.mark.parametrize("case", list(CASES))
def test_matches_msst(case):
    _, _, ours_class, extra = CASES[case]
    ref = reference_model(case)
    ours = ours_class(**{**CONFORMER, **extra})
    assert_same_layout(ours, ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_same_step(f"conformer {case}", ours, ref, make_audio(2, 2, LENGTH, seed=1))
    # one training forward each: the batch norms' running statistics moved alike
    assert_relative_close(f"conformer {case}: running statistics", running_statistics(ours), running_statistics(ref), 1e-5)
    assert ours.layers[0][-1].layers[0].conv.net[5].num_batches_tracked.item() == 1


def test_grouped_inference_matches_one_pass():
    ref = reference_model("bs")
    ours = BSConformer(**CONFORMER, freqs_per_bands=SMALL_BANDS).eval()
    ours.load_state_dict(ref.state_dict())
    audio = make_audio(2, 2, LENGTH, seed=4)
    with torch.no_grad():
        whole = ours(audio)
        ours.layers.group_tokens = 50  # a sequence or two per group
        assert_relative_close("conformer: grouped inference", ours(audio), whole, 1e-6)


@pytest.mark.parametrize("case", ["bs-linear", "mel"])
def test_recognised_from_a_bare_checkpoint(tmp_path, case):
    model_type, _, _, extra = CASES[case]
    ref = reference_model(case).eval()
    loaded = load_model(save(tmp_path, {"state_dict": ref.state_dict()}))
    assert loaded.model_type == model_type
    settings = loaded.config["model"]
    expected = {key: CONFORMER[key] for key in ("time_conformer_depth", "freq_conformer_depth", "ff_mult", "conv_expansion_factor", "conv_kernel_size")}
    assert {key: settings[key] for key in expected} == expected
    assert settings["linear_conformer_depth"] == extra.get("linear_conformer_depth", 0)
    assert settings["mask_estimator_depth"] == extra.get("mask_estimator_depth", 2)
    audio = make_audio(1, 2, LENGTH, seed=5)
    with torch.no_grad():
        assert_relative_close(f"conformer {case}: inferred from the checkpoint", loaded.model(audio), ref(audio))


def test_yaml_with_conformer_keys_builds_a_conformer():
    model = dict(CONFORMER, num_bands=16)
    assert isinstance(model_from_config(read_config({"model": model})), MelBandConformer)
    assert isinstance(model_from_config(read_config({"model": dict(CONFORMER, freqs_per_bands=SMALL_BANDS)})), BSConformer)


def test_even_kernel_is_refused():
    with pytest.raises(ValueError, match="conv_kernel_size must be odd"):
        BSConformer(**{**CONFORMER, "conv_kernel_size": 8}, freqs_per_bands=SMALL_BANDS)


def test_conformer_with_our_attention_options_is_recognised():
    model = BSConformer(**CONFORMER, freqs_per_bands=SMALL_BANDS, use_pope=True, use_shared_bias=True)
    model_type, settings, _ = infer_config(model.state_dict())
    assert model_type == "bs_conformer" and settings["use_pope"] and settings["use_shared_bias"]
