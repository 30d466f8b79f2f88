"""Attention variants of published checkpoints, each against its reference on random weights: PoPE
attention (MSST's BS PolarFormer, with pope-pytorch), shared attention biases (splifft's SW export), and
value-residual checkpoints loaded with a YAML (upstream bs-roformer 0.5.1). Keys, order and shapes;
outputs; losses and gradients; recognition from a bare checkpoint."""

import pytest
import torch
import yaml

import references
from bs_roformer import BSRoformer, load_model
from bs_roformer.inference.checkpoint import infer_config
from bs_roformer.inference.loading import load_weights
from bs_roformer.modules.pope import pope_inverse_frequencies
from helpers import (
    SMALL_BANDS, SMALL_STFT, TINY, assert_relative_close, assert_same_gradients, assert_same_layout, make_audio, perturb_,
)

TINY_STEREO = dict(TINY, attn_dropout=0.0, ff_dropout=0.0, stereo=True, num_stems=2, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
LENGTH = 64 * 40 + 17


def assert_same_step(name, ours, ref, audio):
    """Equal eval outputs, then equal training losses (L1, multi-resolution STFT) and gradients."""
    ref.eval(), ours.eval()
    with torch.no_grad():
        expected = ref(audio)
        assert_relative_close(f"{name}: output", ours(audio), expected)
    target = make_audio(audio.shape[0], expected.shape[1] * audio.shape[1], audio.shape[-1], seed=2).view(*expected.shape[:-1], -1)
    ref.train(), ours.train()
    ref_total, ref_terms = ref(audio, target=target, return_loss_breakdown=True)
    total, terms = ours(audio, target=target, return_loss_breakdown=True)
    for index, (value, expected_value) in enumerate(zip((total, *terms), (ref_total, *ref_terms))):
        assert_relative_close(f"{name}: loss term {index}", value, expected_value)
    ref_total.backward()
    total.backward()
    assert_same_gradients(name, ours, ref)


def save(tmp_path, state_dict, name="model.ckpt"):
    path = tmp_path / name
    torch.save(state_dict, path)
    return path


# --- PoPE ----------------------------------------------------------------------------------------------


def msst_pope_model():
    torch.manual_seed(0)
    ref = perturb_(references.msst_bs_roformer_family().bs_roformer.BSRoformer(**TINY_STEREO, use_pope=True))
    with torch.no_grad():  # phase offsets across PoPE's range [-2 pi, 0], some beyond it (clamped)
        for name, parameter in ref.named_parameters():
            if name.endswith("pope_embed.bias"):
                parameter.uniform_(-7.0, 0.5)
    return ref


def test_pope_matches_msst():
    ref = msst_pope_model()
    ours = BSRoformer(**TINY_STEREO, use_pope=True)
    assert_same_layout(ours, ref)
    assert not any("rotary" in key for key in ours.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert_same_step("pope", ours, ref, make_audio(2, 2, LENGTH, seed=1))


def test_pope_without_fused_attention_matches():
    ref = msst_pope_model()
    ours = BSRoformer(**TINY_STEREO, use_pope=True, flash_attn=False)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.eval(), ours.eval()
    audio = make_audio(1, 2, LENGTH, seed=3)
    with torch.no_grad():
        assert_relative_close("pope explicit attention: output", ours(audio), ref(audio))


def test_pope_fp16_checkpoint_gets_exact_frequencies_and_is_recognised(tmp_path):
    ref = msst_pope_model()
    path = save(tmp_path, {key: value.half() for key, value in ref.state_dict().items()})
    loaded = load_model(path)
    assert loaded.model_type == "bs_roformer" and loaded.config["model"]["use_pope"] is True
    exact = pope_inverse_frequencies(TINY["dim_head"])
    pope_modules = [module for module in loaded.model.modules() if hasattr(module, "inv_freqs")]
    assert len(pope_modules) == 2  # one per axis, shared by its attentions
    for module in pope_modules:
        assert torch.equal(module.inv_freqs, exact)
    # the fp16 rounding that was undone: up to 0.05 % per frequency, half a radian at frame 1000
    assert (exact.half().float() - exact).abs().max() * 1000 > 0.1
    # trained values (the phase biases) keep their stored fp16 values
    bias = next(module.bias for module in pope_modules)
    assert torch.equal(bias, ref.state_dict()["layers.0.0.layers.0.0.pope_embed.bias"].half().float())


def test_custom_pope_frequencies_are_kept(tmp_path):
    ours = BSRoformer(**TINY_STEREO, use_pope=True)
    state = {key: value.half() for key, value in ours.state_dict().items()}
    custom = (pope_inverse_frequencies(TINY["dim_head"], theta=500.0)).half()
    state.update({key: custom for key in state if key.endswith("inv_freqs")})
    load_weights(ours, state)
    assert all(torch.equal(module.inv_freqs, custom.float()) for module in ours.modules() if hasattr(module, "inv_freqs"))


# --- shared attention biases (splifft) -------------------------------------------------------------------


def splifft_shared_bias_model(chunk_size):
    torch.manual_seed(0)
    with references.splifft_bs_roformer() as splifft:
        params = splifft.BSRoformerParams(
            chunk_size=chunk_size, output_stem_names=("bass", "drums"), dim=TINY["dim"], depth=TINY["depth"],
            band_config=splifft.FixedBandsConfig(kind="fixed", freqs_per_bands=SMALL_BANDS),
            stft_hop_length=SMALL_STFT["stft_hop_length"], stereo=True, time_transformer_depth=1, freq_transformer_depth=1,
            heads=TINY["heads"], dim_head=TINY["dim_head"], use_shared_bias=True,
        )
        return perturb_(splifft.BSRoformer(params))


def our_masks(model, spec):
    """Our network from spectrum to masks, as splifft's model computes it: (b, (f s), t, 2) -> (b, n, (f s), t, 2)."""
    x = model.final_norm(model.layers(model.band_split(model.bands.gather(spec))))
    return model.bands.scatter(torch.stack([estimator(x) for estimator in model.mask_estimators], dim=1))


def test_shared_biases_match_splifft():
    length = SMALL_STFT["stft_hop_length"] * 40
    ref = splifft_shared_bias_model(length)
    ours = BSRoformer(**{**TINY_STEREO, "depth": None}, num_layers=TINY["depth"], use_shared_bias=True)
    # splifft keeps its rotary tables out of the state dict; otherwise the same keys in the same order
    assert_same_layout(ours, ref, ignore=lambda key: key.endswith("rotary_embed.freqs"))
    assert list(ours.state_dict())[:2] == ["shared_qkv_bias", "shared_out_bias"]
    load_weights(ours, ref.state_dict())
    assert ours.layers[1][1].layers[0][0].to_qkv.bias is ours.shared_qkv_bias

    spec = ours.stft(make_audio(2, 2, length, seed=1))
    ref.eval(), ours.eval()
    with torch.no_grad():
        assert_relative_close("shared biases: masks", our_masks(ours, spec), ref(spec))
    target = torch.randn(ref(spec).shape, generator=torch.Generator().manual_seed(2))
    ref.train(), ours.train()
    ref_loss = (ref(spec) - target).abs().mean()
    loss = (our_masks(ours, spec) - target).abs().mean()
    assert_relative_close("shared biases: loss", loss, ref_loss)
    ref_loss.backward()
    loss.backward()
    assert ours.shared_qkv_bias.grad.abs().max() > 0
    assert_same_gradients("shared biases", ours, ref)


def test_shared_biases_stored_once_load_and_are_recognised(tmp_path):
    ref = splifft_shared_bias_model(64 * 40)
    exported = {key: value.half() for key, value in ref.state_dict().items() if not key.endswith(("to_qkv.bias", "to_out.0.bias"))}
    loaded = load_model(save(tmp_path, exported))
    assert loaded.config["model"]["use_shared_bias"] is True
    model = loaded.model
    assert torch.equal(model.layers[0][0].layers[0][0].to_out[0].bias, ref.shared_out_bias.detach().half().float())


def test_num_layers_is_depth():
    model = BSRoformer(**{**TINY_STEREO, "depth": None}, num_layers=3)
    assert len(model.layers) == 3
    with pytest.raises(ValueError, match="depth=2 and num_layers=3 disagree"):
        BSRoformer(**TINY_STEREO, num_layers=3)
    with pytest.raises(TypeError, match="missing the keyword depth"):
        BSRoformer(**{**TINY_STEREO, "depth": None})


# --- value residual from a YAML (unwa's VRL: upstream bs-roformer 0.5.1 keys) ----------------------------

# BS_Inst_EXP_VRL.yaml's model section has upstream 0.5.1's constructor keywords only: that release has value
# residual always on and no keyword for it (nor for zero_dc or the output length)
UPSTREAM_KEYS = dict(TINY, attn_dropout=0.0, ff_dropout=0.0, stereo=True, num_stems=1, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)


def vrl_checkpoint_and_yaml(tmp_path, **extra_model_keys):
    torch.manual_seed(0)
    ref = perturb_(references.upstream().BSRoformer(**UPSTREAM_KEYS))
    config = dict(
        audio=dict(chunk_size=4096, sample_rate=44100),
        model={key: list(value) if isinstance(value, tuple) else value for key, value in {**UPSTREAM_KEYS, **extra_model_keys}.items()},
        training=dict(instruments=["other", "vocals"], target_instrument="other"),
        inference=dict(batch_size=1, num_overlap=2),
    )
    config_path = tmp_path / "BS_Inst_EXP_VRL.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return ref, save(tmp_path, {"state_dict": ref.state_dict()}, "BS_Inst_EXP_VRL.ckpt"), config_path


@pytest.mark.parametrize("extra", [{}, {"value_residual": True}], ids=["0.5.1 keys only", "value_residual: true"])
def test_value_residual_checkpoint_with_its_yaml(tmp_path, extra):
    ref, checkpoint, config = vrl_checkpoint_and_yaml(tmp_path, **extra)
    loaded = load_model(checkpoint, config=config)
    model = loaded.model
    assert model.layers.value_residual and not model.stft.zero_dc and not model.match_input_audio_length
    assert loaded.stems == ["other"]
    [note] = [note for note in loaded.notes if "bs-roformer 0.5.x" in note]
    assert "zero_dc=False" in note and ("value_residual=True" in note) == (not extra)
    audio = make_audio(1, 2, LENGTH, seed=1)
    ref.eval()
    with torch.no_grad():
        assert_relative_close("value residual from yaml: output", model(audio), ref(audio))
    assert infer_config(ref.state_dict())[1]["value_residual"] is True


def test_yaml_settings_win_over_the_lineage(tmp_path):
    _, checkpoint, config = vrl_checkpoint_and_yaml(tmp_path, zero_dc=True)
    loaded = load_model(checkpoint, config=config)
    assert loaded.model.stft.zero_dc and not loaded.model.match_input_audio_length


# --- unknown keys ----------------------------------------------------------------------------------------


def test_unknown_key_families_are_named_with_the_nearest_variant(tmp_path):
    state = BSRoformer(**TINY_STEREO, use_pope=True).state_dict()
    # hyper-connections (lucidrains >= 0.6): tensors no supported variant has
    state.update({f"layers.{i}.1.layers.0.0.residual_mix.weight": torch.zeros(4, 4) for i in range(2)})
    with pytest.raises(ValueError) as error:
        infer_config(state)
    message = str(error.value)
    assert "2 x layers.N.N.layers.N.N.residual_mix.weight" in message
    assert "nearest known variant is bs_roformer with PoPE attention (use_pope)" in message
    with pytest.raises(ValueError, match="residual_mix"):
        load_model(save(tmp_path, state))
