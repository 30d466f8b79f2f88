"""Typed model configs: building, checks at config time, MSST sections both ways, and honest layering."""

import ast
import inspect
import os
import subprocess
import sys
import warnings
from dataclasses import fields
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml

from bs_roformer import (
    BSRNN,
    BSConformer,
    BSConformerConfig,
    BSRNNConfig,
    BSRoformer,
    BSRoformerConfig,
    MelBandConformer,
    MelBandConformerConfig,
    MelBandRoformer,
    MelBandRoformerConfig,
)
from bs_roformer.compat import MSST_MODEL_KEYWORDS
from bs_roformer.inference.config import MODEL_TYPES, model_from_config, read_config
from bs_roformer.inference.registry import REGISTRY
from bs_roformer.models import ConfiguredModel, ModelConfig, model_config, setting
from helpers import SMALL_BANDS, SMALL_STFT, TINY, tiny_config

ROOT = Path(__file__).resolve().parents[1]
MSST = next(
    (path for path in (ROOT.parent / "shared" / "references" / "msst-ccc011a", Path("/work/shared/references/msst-ccc011a"))
     if path.is_dir()),
    None,
)

CONFORMER = dict(dim=16, depth=1, heads=2, dim_head=8, time_conformer_depth=1, freq_conformer_depth=1, conv_kernel_size=3,
                 **SMALL_STFT)
FAMILIES = {
    "bs_roformer": (BSRoformer, BSRoformerConfig, dict(TINY, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)),
    "mel_band_roformer": (MelBandRoformer, MelBandRoformerConfig, dict(TINY, num_bands=16, **SMALL_STFT)),
    "bsrnn": (BSRNN, BSRNNConfig, dict(dim=16, depth=1, hidden=8, freqs_per_bands=SMALL_BANDS, **SMALL_STFT)),
    "bs_conformer": (BSConformer, BSConformerConfig, dict(CONFORMER, freqs_per_bands=SMALL_BANDS)),
    "mel_band_conformer": (MelBandConformer, MelBandConformerConfig, dict(CONFORMER, num_bands=16)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_keywords_config_and_from_config_build_the_same_model(family):
    model_class, config_class, settings = FAMILIES[family]
    config = config_class(**settings, stereo=True, num_stems=2)
    torch.manual_seed(0)
    from_keywords = model_class(**settings, stereo=True, num_stems=2)
    torch.manual_seed(0)
    from_config = model_class.from_config(config)
    assert from_keywords.config == config == from_config.config
    assert model_class(config).config is config
    reference = from_keywords.state_dict()
    assert list(from_config.state_dict()) == list(reference)
    assert all(torch.equal(value, reference[key]) for key, value in from_config.state_dict().items())
    with pytest.raises(TypeError, match=r"a config or settings, not both: change a config with config.replace"):
        model_class(config, num_stems=1)
    positional = dict(settings)
    assert model_class(positional.pop("dim"), **positional).config == config_class(**settings)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_msst_sections_round_trip_through_yaml(family):
    _, config_class, settings = FAMILIES[family]
    config = config_class(**settings, stereo=True, num_stems=3, freq_range=None)
    section = yaml.safe_load(yaml.safe_dump(config.to_msst()))
    assert config_class.from_msst(section) == config
    changed = config.replace(mask_estimator_depth=3, zero_dc=not config.zero_dc)
    assert config_class.from_msst(changed.to_msst()) == changed != config


def test_to_msst_writes_only_what_msst_model_files_take_unless_changed():
    config = BSRoformerConfig(**FAMILIES["bs_roformer"][2])
    assert set(config.to_msst()) <= MSST_MODEL_KEYWORDS["bs_roformer"]
    assert "match_input_audio_length" not in config.to_msst()
    assert config.replace(match_input_audio_length=False).to_msst()["match_input_audio_length"] is False
    with pytest.raises(ValueError, match="stft_window_fn=.*is a function and cannot be written"):
        config.replace(stft_window_fn=torch.hamming_window).to_msst()


@pytest.mark.skipif(MSST is None, reason="the MSST reference files (shared/references/msst-ccc011a) are not here")
@pytest.mark.parametrize("model_type, class_name", [
    ("bs_roformer", "BSRoformer"), ("mel_band_roformer", "MelBandRoformer"),
    ("bs_conformer", "BSConformer"), ("mel_band_conformer", "MelBandConformer"),
])
def test_msst_keyword_table_is_msst_model_files_signature(model_type, class_name):
    tree = ast.parse((MSST / "models" / "bs_roformer" / f"{model_type}.py").read_text())
    init = next(
        node for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) and cls.name == class_name
        for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__"
    )
    assert MSST_MODEL_KEYWORDS[model_type] == {arg.arg for arg in init.args.args[1:] + init.args.kwonlyargs}
    assert MSST_MODEL_KEYWORDS[model_type] <= set(MODEL_TYPES[model_type].Config.__dataclass_fields__)


def test_a_wrong_type_fails_once_at_config_time_naming_key_and_type(tmp_path):
    with pytest.raises(TypeError, match=r"^sample_rate must be int, got 'fast' \(str\)$"):
        BSRoformerConfig(dim=16, depth=1, sample_rate="fast")
    with pytest.raises(TypeError, match=r"stereo must be bool, got 'yes'"):
        MelBandRoformer(dim=16, depth=1, stereo="yes")
    with pytest.raises(TypeError, match=r"freqs_per_bands must be Union\[str, Sequence\[int\]\], got 3.5"):
        BSRNN(freqs_per_bands=3.5)
    config = tiny_config()
    config["model"]["sample_rate"] = "fast"
    with pytest.raises(ValueError, match=r"model section of a bs_roformer config: sample_rate must be int, got 'fast'"):
        model_from_config(read_config(config))
    config = tiny_config()
    config["audio"]["sample_rate"] = "fast"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(ValueError, match=r"config.yaml: audio.sample_rate must be Optional\[int\], got 'fast' \(str\)"):
        read_config(tmp_path / "config.yaml")


def test_ints_are_accepted_for_floats_and_lists_stored_as_tuples():
    config = MelBandRoformerConfig(dim=16, depth=1, attn_dropout=0, multi_stft_resolutions_window_sizes=[256, 128])
    assert config.attn_dropout == 0 and config.multi_stft_resolutions_window_sizes == (256, 128)
    assert hash(config) == hash(config.replace())


def test_unknown_and_missing_keys_are_named_with_the_nearest_setting():
    with pytest.raises(ValueError, match=r"unknown setting 'num_stem' \(did you mean num_stems\?\)"):
        BSRoformerConfig.from_msst(dict(dim=16, depth=1, num_stem=2))
    with pytest.raises(ValueError, match=r"unknown setting 'freqs_per_bands'"):
        MelBandRoformerConfig.from_msst(dict(dim=16, depth=1, freqs_per_bands=(1, 2)))
    with pytest.raises(ValueError, match=r"missing setting depth \(axial layers"):
        MelBandRoformerConfig.from_msst(dict(dim=16))
    with pytest.raises(ValueError, match=r"missing the keyword depth .*num_layers is accepted as its alias"):
        BSRoformerConfig.from_msst(dict(dim=16))
    with pytest.raises(TypeError, match=r"BSRNN\(\): unknown setting 'hiden' \(did you mean hidden\?\)"):
        BSRNN(hiden=8)
    with pytest.raises(TypeError, match=r"unknown setting 'heads'"):
        BSRNNConfig().replace(heads=2)


def test_invalid_values_fail_at_config_time():
    with pytest.raises(ValueError, match="hidden must be a positive integer, got 0"):
        BSRNNConfig(hidden=0)
    with pytest.raises(ValueError, match="num_stems must be a positive integer, got 0"):
        BSRoformerConfig(dim=16, depth=1, num_stems=0)


def test_ignored_msst_keys_warn_only_when_set():
    settings = FAMILIES["bs_roformer"][2]
    with pytest.warns(UserWarning, match="sage_attention: True is not supported and is ignored"):
        config = BSRoformerConfig.from_msst(dict(settings, sage_attention=True))
    assert config == BSRoformerConfig(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BSRoformerConfig.from_msst(dict(settings, sage_attention=False, debug_visualize=None)) == config


@pytest.mark.parametrize("config_class", [BSRoformerConfig, MelBandRoformerConfig, BSRNNConfig, BSConformerConfig,
                                          MelBandConformerConfig])
def test_every_setting_is_documented_in_the_config_docstring(config_class):
    for item in fields(config_class):
        assert f"\n    {item.name}: " in config_class.__doc__
        assert config_class.meanings[item.name]


def test_replace_mask_heads_updates_the_config():
    model = BSRNN(**FAMILIES["bsrnn"][2], num_stems=3)
    model.replace_mask_heads(num_stems=2)
    assert model.config.num_stems == 2 == len(model.mask_estimators)


def test_registry_configs_round_trip():
    shipped = [entry for entry in REGISTRY.values() if entry.config_path is not None]
    assert len(shipped) > 100
    for entry in shipped:
        config = read_config(entry.config_path)
        model_class = MODEL_TYPES[config["training"].get("model_type", "bs_roformer")]
        typed = model_class.Config.from_msst(config["model"])
        assert model_class.Config.from_msst(typed.to_msst()) == typed, entry.name


BLOCKED = ("soundfile", "soxr", "yaml", "pyyaml", "tqdm", "safetensors")
CORE_ONLY = """
import sys
import torch
import bs_roformer
from bs_roformer.models import BSRoformer, MelBandRoformer, BSRNN
from bs_roformer import BSRoformerConfig
import bs_roformer.compat

model = bs_roformer.MelBandRoformer(dim=16, depth=1, heads=1, dim_head=8, num_bands=8, stft_n_fft=256,
                                    stft_win_length=256, stft_hop_length=64)
assert model(torch.randn(1, 1, 2048)).shape == (1, 1, 2048)
BSRoformer(BSRoformerConfig(dim=16, depth=1))
BSRNN(dim=16, depth=1, hidden=8)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in {blocked!r})
assert not loaded, loaded
try:
    bs_roformer.load_model
except ImportError as error:
    print("load_model:", error)
"""


def test_the_models_need_only_the_model_core_packages(tmp_path):
    """`import bs_roformer` and the models work where soundfile, soxr, PyYAML, tqdm, safetensors are absent."""
    site_packages = Path(torch.__file__).resolve().parents[1]
    without = tmp_path / "site-packages"
    without.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lstrip("_").lower().startswith(BLOCKED) and not entry.name.endswith(".pth"):
            (without / entry.name).symlink_to(entry)
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{without}")
    script = CORE_ONLY.format(blocked=set(BLOCKED) | {"_yaml", "_soundfile"})
    # -S: no site-packages but ours, and no .pth files (the editable install of another checkout)
    result = subprocess.run([sys.executable, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "load_model: No module named" in result.stdout  # the separation side says what it lacks


@model_config
class ToyConfig(ModelConfig):
    """A family that is not band-split: the pattern a new model follows."""

    model_type: ClassVar[str] = "toy"
    width: int = setting(4, "features")
    gain: float = setting(1.0, "output scale")


class Toy(ConfiguredModel):
    Config = ToyConfig

    def __init__(self, *args, **settings):
        super().__init__(*args, **settings)
        self.linear = torch.nn.Linear(self.config.width, self.config.width)


def test_any_model_family_gets_the_config_machinery():
    model = Toy(width=3)
    assert model.config == ToyConfig(width=3) and Toy.from_config(model.config).linear.in_features == 3
    assert list(inspect.signature(Toy).parameters) == ["width", "gain"]
    assert "width" not in inspect.signature(model).parameters  # an instance's call is its forward's
    assert ToyConfig.from_msst(ToyConfig(gain=2).to_msst()) == ToyConfig(gain=2)
    with pytest.raises(TypeError, match=r"Toy\(\): unknown setting 'widht' \(did you mean width\?\)"):
        Toy(widht=3)
    with pytest.raises(TypeError, match="gain must be float, got 'loud'"):
        Toy(gain="loud")
    assert "dim" in inspect.signature(BSRoformer).parameters and "num_bands" in inspect.signature(MelBandRoformer).parameters


@pytest.mark.parametrize("section", ["audio", "model"])
def test_a_bad_sample_rate_is_reported_once_before_any_file(tmp_path, capsys, section):
    """Defect 5: `sample_rate: "fast"` failed per file with invalid literal for int()."""
    import soundfile as sf

    from bs_roformer.cli import main

    config = tiny_config()
    torch.save(model_from_config(read_config(config)).state_dict(), tmp_path / "model.ckpt")
    config[section]["sample_rate"] = "fast"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    songs = [tmp_path / f"song{index}.wav" for index in range(2)]
    for song in songs:
        sf.write(song, torch.zeros(4096, 2).numpy(), 44100)
    code = main([*map(str, songs), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "model.ckpt"),
                 "--config", str(tmp_path / "config.yaml")])
    error = capsys.readouterr().err
    assert code == 1 and error.count("sample_rate must be") == 1 and "invalid literal" not in error
    assert f"{section}.sample_rate must be Optional[int]" in error or "sample_rate must be int, got 'fast'" in error
    assert not (tmp_path / "out").exists()
