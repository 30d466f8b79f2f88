"""bs_roformer.compat: each compatibility quirk with both of its values, and architecture inference per family."""

import argparse
import re
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from bs_roformer import BSRNN, BSConformer, BSRoformer, BSRoformerConfig, MelBandConformer, MelBandRoformer, compat, load_model
from bs_roformer.cli.separate import build_parser
from bs_roformer.inference.checkpoint import infer_config
from bs_roformer.models.config import model_config
from helpers import SMALL_BANDS, SMALL_STFT, TINY, make_audio, perturb_
from test_configs import CONFORMER
from test_parity import AS_UPSTREAM_0_5_1

README = Path(__file__).resolve().parents[1] / "README.md"


def mask_linears(model) -> int:
    """Linear layers in the first band's mask MLP."""
    return sum(isinstance(module, torch.nn.Linear) for module in model.mask_estimators[0].to_freqs[0].modules())


@pytest.mark.parametrize("model_class, settings, hidden_layers", [
    # COMPAT: BS builds mask_estimator_depth - 1 hidden layers, Mel (and BSRNN) mask_estimator_depth
    (BSRoformer, dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT), 1),
    (MelBandRoformer, dict(TINY, num_bands=8, **SMALL_STFT), 2),
    (BSRNN, dict(dim=16, depth=1, hidden=8, freqs_per_bands=SMALL_BANDS, **SMALL_STFT), 2),
    # COMPAT: MSST's Conformer files, Mel too, build mask_estimator_depth - 1 hidden layers
    (BSConformer, dict(CONFORMER, freqs_per_bands=SMALL_BANDS), 1),
    (MelBandConformer, dict(CONFORMER, num_bands=8), 1),
])
def test_mask_depth_rule_of_each_family(model_class, settings, hidden_layers):
    model = model_class(**settings, mask_estimator_depth=2)
    assert mask_linears(model) == hidden_layers + 1
    assert compat.mask_hidden_layers(model.config) == hidden_layers
    assert compat.mask_estimator_depth_for(model.config.model_type, hidden_layers) == 2


def test_mask_depth_rule_is_inherited_by_a_variant_config():
    @model_config
    class VariantConfig(BSRoformerConfig):
        model_type: ClassVar[str] = "bs_roformer_variant"

    assert compat.mask_hidden_layers(VariantConfig(dim=16, depth=1, mask_estimator_depth=3)) == 2
    with pytest.raises(KeyError, match="no mask-depth rule for model type 'unknown'"):
        compat.mask_estimator_depth_for("unknown", 1)


def test_readme_lineage_table_is_generated_from_compat():
    assert compat.lineage_table() in README.read_text(), "README's lineage table: paste compat.lineage_table()"


def test_upstream_settings_are_the_ones_the_parity_tests_prove():
    assert compat.upstream_settings("bs_roformer") == AS_UPSTREAM_0_5_1
    # test_parity's upstream Mel cases: AS_UPSTREAM_0_5_1 with value_residual off and one linear layer
    assert {**compat.upstream_settings("mel_band_roformer"), "match_input_audio_length": False, "value_residual": False} == dict(
        AS_UPSTREAM_0_5_1, value_residual=False, linear_transformer_depth=1
    )


def test_empty_linear_slot_renumbering_both_layouts():
    model = MelBandRoformer(**TINY, num_bands=8, **SMALL_STFT)
    msst_layout = model.state_dict()
    assert compat.renumber_empty_linear_slot(model, msst_layout) is msst_layout  # COMPAT: MSST: .0/.1, untouched
    upstream_layout = {re.sub(r"^layers\.(\d+)\.(\d+)\.", lambda m: f"layers.{m[1]}.{int(m[2]) + 1}.", k): v
                       for k, v in msst_layout.items()}  # COMPAT: upstream 0.5.1: .1/.2 after an empty slot
    assert list(compat.renumber_empty_linear_slot(model, upstream_layout)) == list(msst_layout)


@pytest.mark.parametrize("ours", list(compat.CLI_ALIASES))
def test_other_tools_flags_are_aliases_of_ours(ours):
    parser = build_parser()
    action = next(action for action in parser._actions if ours in action.option_strings)
    if action.nargs == 0:  # a switch
        arguments, expected = [], action.const
    else:
        value = action.choices[0] if action.choices else "2" if action.type is float else "x.ckpt"
        arguments, expected = [value], action.type(value) if action.type else value
        if action.nargs == "+" or isinstance(action, argparse._AppendAction):  # -m may repeat: a list
            expected = [expected]
    for alias, tool in compat.CLI_ALIASES[ours]:
        assert getattr(parser.parse_args([alias, *arguments]), action.dest) == expected, (alias, tool)


# --- architecture inference -------------------------------------------------------------------------------

BSRNN_CASES = {
    "lstm-mono-1stem": dict(),
    "gru-stereo-2stems-maskdepth2-mlp2": dict(layer_type="gru", stereo=True, num_stems=2, mask_estimator_depth=2,
                                               mlp_expansion_factor=2),
    "conv3-attention2x4": dict(layer_type="conv", conv_kernel_size=3, attention_heads=2, attention_dim=4),
    "no-hidden-mask-layer": dict(mask_estimator_depth=0, depth=2),
}


@pytest.mark.parametrize("case", list(BSRNN_CASES))
def test_bare_bsrnn_checkpoint_loads_by_inference(tmp_path, case):
    """Defect 7: a BSRNN checkpoint without a config crashed with invalid literal for int(): 'across_time'."""
    settings = dict(dim=16, depth=1, hidden=8, freqs_per_bands=SMALL_BANDS, stft_n_fft=256, stft_hop_length=64)
    settings.update(BSRNN_CASES[case])
    torch.manual_seed(0)
    model = perturb_(BSRNN(**settings)).eval()
    torch.save(model.state_dict(), tmp_path / "bsrnn.ckpt")

    loaded = load_model(tmp_path / "bsrnn.ckpt")
    assert loaded.model_type == "bsrnn"
    for key, value in settings.items():
        if key not in ("stft_hop_length", "freqs_per_bands"):
            assert getattr(loaded.model.config, key) == value, key
    assert loaded.model.config.freqs_per_bands == SMALL_BANDS
    assert any("stft_hop_length=64 assumed" in note for note in loaded.notes)
    assert any("sample_rate=44100 assumed" in note for note in loaded.notes)
    if settings.get("attention_heads"):
        assert any("attention_dim=4 assumed" in note for note in loaded.notes)
    audio = make_audio(1, 2 if settings.get("stereo") else 1, 64 * 30 + 7, seed=4)
    with torch.no_grad():
        assert torch.equal(loaded.model(audio), model(audio))


def test_bsrnn_attention_split_that_the_default_cannot_explain_is_noted():
    model = BSRNN(dim=12, depth=1, hidden=8, freqs_per_bands=SMALL_BANDS, attention_heads=3, attention_dim=3, **SMALL_STFT)
    _, settings, notes = infer_config(model.state_dict())
    # 3 x 3 = 9 query features per band: with attention_dim 4 impossible, so one head of 9 is assumed
    assert (settings["attention_heads"], settings["attention_dim"]) == (1, 9)
    assert any("attention_heads x attention_dim = 9" in note for note in notes)


def test_unrecognised_weights_name_the_families_tried():
    with pytest.raises(ValueError, match=r"not of a model family bs_roformer can recognise \(bsrnn, roformer_with_mask_head, roformer\)"):
        compat.infer_architecture({"encoder.weight": torch.zeros(2, 2)})


def test_a_new_family_registers_a_recogniser(monkeypatch):
    def recognise_toy(state_dict):
        if "toy.weight" not in state_dict:
            return None
        return compat.Inferred("toy", {"dim": state_dict["toy.weight"].shape[0]}, ["toy: nothing assumed"])

    monkeypatch.setattr(compat, "RECOGNISERS", [recognise_toy, *compat.RECOGNISERS])
    assert infer_config({"toy.weight": torch.zeros(5)}) == ("toy", {"dim": 5}, ["toy: nothing assumed"])
    bs = BSRoformer(**TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
    assert infer_config(bs.state_dict())[0] == "bs_roformer"  # the others still answer for their weights


def test_dim_freqs_in_is_accepted_and_ignored():
    """COMPAT: MSST configs carry dim_freqs_in (1025 for n_fft 2048); the bins follow from stft_n_fft here."""
    settings = dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)
    torch.manual_seed(0)
    default = BSRoformer(**settings).state_dict()
    torch.manual_seed(0)
    other = BSRoformer(**settings, dim_freqs_in=129).state_dict()
    assert all(torch.equal(value, other[key]) for key, value in default.items())
