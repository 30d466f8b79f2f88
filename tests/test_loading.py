"""load_model: MSST configs, checkpoint containers, architecture inference, mismatch reports."""

import pickle

import pytest
import torch
import yaml
from safetensors.torch import save_model

import references
from bs_roformer import load_model, read_config
from bs_roformer.inference.checkpoint import infer_config, read_state_dict
from bs_roformer.inference.config import model_from_config, stem_names
from bs_roformer.inference.registry import REGISTRY, registered
from helpers import SMALL_STFT, TINY, make_audio, perturb_, tiny_config


def write_config(tmp_path, config, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def trained_model(config):
    torch.manual_seed(0)
    return perturb_(model_from_config(read_config(config))).eval()


def same_outputs(a, b, channels=2):
    audio = make_audio(1, channels, 4096, seed=9)
    with torch.no_grad():
        return torch.equal(a(audio), b(audio))


CONTAINERS = {
    "raw": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd},
    "state": lambda sd: {"state": sd},
    "model": lambda sd: {"model": sd},
    "msst-training": lambda sd: {"epoch": 17, "model_state_dict": sd, "optimizer_state_dict": {"lr": 1e-4}, "best_metric": 9.6},
    "dataparallel": lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    "compiled": lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
}


@pytest.mark.parametrize("model_type", ["bs_roformer", "mel_band_roformer"])
@pytest.mark.parametrize("container", list(CONTAINERS))
def test_yaml_and_checkpoint_containers(tmp_path, model_type, container):
    config = tiny_config(model_type)
    model = trained_model(config)
    torch.save(CONTAINERS[container](model.state_dict()), tmp_path / "model.ckpt")
    loaded = load_model(tmp_path / "model.ckpt", config=write_config(tmp_path, config))
    assert loaded.model_type == model_type
    assert loaded.stems == ["drums", "bass", "other", "vocals"]
    assert loaded.chunk_size == 4096 and loaded.batch_size == 2 and loaded.num_overlap == 2
    assert same_outputs(loaded.model, model)


def test_fp16_and_safetensors(tmp_path):
    config = tiny_config()
    model = trained_model(config)
    half = {k: v.half() for k, v in model.state_dict().items()}
    torch.save(half, tmp_path / "half.ckpt")
    # save_model stores the shared rotary frequencies under one of their names only
    save_model(model, str(tmp_path / "model.safetensors"))
    path = write_config(tmp_path, config)

    assert same_outputs(load_model(tmp_path / "model.safetensors", config=path).model, model)
    from_half = load_model(tmp_path / "half.ckpt", config=path).model
    naive = model_from_config(read_config(config))
    naive.load_state_dict(half)
    # fp16 rounds the rotary frequencies; the loader restores the exact ones
    freqs = lambda m: m.layers[0].time.layers[0][0].rotary_embed.freqs  # noqa: E731
    assert torch.equal(freqs(from_half), freqs(model))
    assert not torch.equal(freqs(naive), freqs(model))
    with torch.no_grad():
        audio = make_audio(1, 2, 64 * 30)
        assert (from_half(audio) - model(audio)).abs().max() < 1e-2 * model(audio).abs().max()


def test_msst_tuple_tags_are_read_safely(tmp_path):
    config = tiny_config()
    text = yaml.safe_dump(config).replace("freqs_per_bands:\n", "freqs_per_bands: !!python/tuple\n")
    assert "!!python/tuple" in text
    parsed = read_config(_write(tmp_path, text))
    assert isinstance(parsed["model"]["freqs_per_bands"], tuple)

    hostile = text + "\nexploit: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(ValueError, match="not a readable YAML config"):
        read_config(_write(tmp_path, hostile))


def _write(tmp_path, text):
    path = tmp_path / "tagged.yaml"
    path.write_text(text)
    return path


def test_registry_configs_build_their_models():
    for entry in REGISTRY.values():
        assert registered(entry.name) is entry
        if entry.config_path is None:
            assert entry.config_urls, entry.name
            continue
        config = read_config(entry.config_path)
        assert entry.stems and list(entry.stems) == stem_names(config, config["model"].get("num_stems", 1)), entry.name
        assert registered(entry.file_name) is entry and all(registered(alias) is entry for alias in entry.aliases)
    assert REGISTRY["model_bs_roformer_ep_17_sdr_9.6568"].stems == ("drums", "bass", "other", "vocals")
    model = model_from_config(read_config(REGISTRY["model_bs_roformer_ep_17_sdr_9.6568"].config_path))
    assert sum(p.numel() for p in model.parameters()) == 131_704_164


# --- inferring the architecture from the tensors ------------------------------------------------------------

INFERABLE = {
    "bs-stereo-4stems": ("bs_roformer", {}),
    "bs-mono-1stem-linear-mlp2-maskdepth3": (
        "bs_roformer", dict(stereo=False, num_stems=1, linear_transformer_depth=1, mlp_expansion_factor=2, mask_estimator_depth=3),
    ),
    "bs-value-residual-depth2-heads4": ("bs_roformer", dict(value_residual=True, time_transformer_depth=2, heads=4, dim_head=8)),
    "mel-stereo": ("mel_band_roformer", dict(mask_estimator_depth=2)),
    "mel-mono-2048-60bands": ("mel_band_roformer", dict(stereo=False, num_bands=60, stft_n_fft=2048, stft_win_length=2048, stft_hop_length=441)),
}


@pytest.mark.parametrize("case", list(INFERABLE))
def test_architecture_is_inferred_from_the_checkpoint(tmp_path, case):
    model_type, overrides = INFERABLE[case]
    config = tiny_config(model_type, **overrides)
    model = trained_model(config)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "model.ckpt")

    loaded = load_model(tmp_path / "model.ckpt")  # no config
    assert loaded.model_type == model_type
    inferred = loaded.config["model"]
    for key, value in config["model"].items():
        if key not in ("stft_hop_length", "attn_dropout", "ff_dropout"):
            assert inferred.get(key, value) == value, key
    assert any("stft_hop_length" in note and "assumed" in note for note in loaded.notes)
    # the hop is the one thing to give back; then the outputs are the original model's
    loaded.model.stft.hop_length = model.stft.hop_length
    loaded.model.stft.zero_dc = model.stft.zero_dc
    loaded.model.match_input_audio_length = model.match_input_audio_length
    assert same_outputs(loaded.model, model, channels=2 if config["model"]["stereo"] else 1)


def test_mismatch_report_lists_keys_and_suggests_a_config(tmp_path):
    config = tiny_config(num_stems=2, value_residual=True)
    torch.save(trained_model(config).state_dict(), tmp_path / "model.ckpt")
    # value_residual stated (a YAML that leaves it out gets it from the checkpoint's lineage)
    wrong = tiny_config(num_stems=4, value_residual=False)
    with pytest.raises(ValueError) as error:
        load_model(tmp_path / "model.ckpt", config=write_config(tmp_path, wrong))
    message = str(error.value)
    assert "weights the model has but the checkpoint lacks" in message and "mask_estimators.*" in message
    assert "weights in the checkpoint the model does not have" in message and "to_value_residual_mix" in message
    assert "num_stems: 2" in message and "value_residual: true" in message


def test_shape_mismatch_is_reported(tmp_path):
    torch.save(trained_model(tiny_config(dim=32)).state_dict(), tmp_path / "model.ckpt")
    with pytest.raises(ValueError, match=r"weights with other shapes:\n.*checkpoint \(32,\), model \(48,\)"):
        load_model(tmp_path / "model.ckpt", config=write_config(tmp_path, tiny_config(dim=48)))


class Arbitrary:
    pass


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"state_dict": {}, "trainer": Arbitrary()}, tmp_path / "model.ckpt")
    with pytest.raises(ValueError, match="refused.*weights_only=False"):
        read_state_dict(tmp_path / "model.ckpt")


def test_unreadable_checkpoints(tmp_path):
    (tmp_path / "broken.ckpt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="broken.ckpt"):
        read_state_dict(tmp_path / "broken.ckpt")
    torch.save({"epoch": 3, "optimizer": {"lr": 1.0}}, tmp_path / "no_weights.ckpt")
    with pytest.raises(ValueError, match="holds no model weights"):
        read_state_dict(tmp_path / "no_weights.ckpt")
    with pytest.raises(FileNotFoundError, match="neither a checkpoint file nor a registered model"):
        load_model(tmp_path / "missing.ckpt")


def test_upstream_mel_without_linear_layers_loads(tmp_path):
    """COMPAT: upstream 0.5.1's MelBandRoformer keeps an empty slot when linear_transformer_depth=0."""
    kwargs = dict(TINY, num_bands=16, attn_dropout=0.0, ff_dropout=0.0, linear_transformer_depth=0, **SMALL_STFT)
    torch.manual_seed(0)
    upstream = perturb_(references.upstream().MelBandRoformer(**kwargs)).eval()
    assert any(key.startswith("layers.0.2.") for key in upstream.state_dict())
    torch.save(upstream.state_dict(), tmp_path / "upstream.ckpt")
    config = dict(model=dict(kwargs, zero_dc=False), training=dict(model_type="mel_band_roformer"))
    ours = load_model(tmp_path / "upstream.ckpt", config=config).model
    audio = make_audio(1, 1, 64 * 30, seed=3)
    with torch.no_grad():
        assert (ours(audio) - upstream(audio)).abs().max() <= 1e-6 * upstream(audio).abs().max()
