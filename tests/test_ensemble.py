"""Ensembles: the combination rules with exact expected values, weights and their errors, and several tiny
random models (each at its own sample rate and chunking, loaded one at a time) on tensors, files and the
command line."""

import weakref

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from bs_roformer import Separator
from bs_roformer.cli import main
from bs_roformer.inference import registry, separator as separator_module
from bs_roformer.inference.config import model_from_config, read_config
from bs_roformer.inference.ensemble import ALGORITHMS, Ensemble, combine, combine_stems
from helpers import make_audio, perturb_, serve, tiny_config

A = torch.tensor([[1.0, -3.0, 2.0, 0.5]])
B = torch.tensor([[2.0, 1.0, -5.0, -0.5]])
C = torch.tensor([[0.0, 2.0, 1.0, 0.25]])


def test_waveform_rules_give_the_exact_values():
    assert torch.equal(combine([A, B, C], "avg_wave"), (A + B + C) / 3)
    assert torch.equal(combine([A, B], "avg_wave", weights=[1, 3]), (A + 3 * B) / 4)
    assert torch.equal(combine([A, B, C], "median_wave"), torch.tensor([[1.0, 1.0, 1.0, 0.25]]))
    assert torch.equal(combine([A, B], "median_wave"), (A + B) / 2)  # an even count: the mean of the middle two
    # min / max: the sample of smallest / largest magnitude, with its sign
    assert torch.equal(combine([A, B, C], "min_wave"), torch.tensor([[0.0, 1.0, 1.0, 0.25]]))
    assert torch.equal(combine([A, B, C], "max_wave"), torch.tensor([[2.0, -3.0, -5.0, 0.5]]))


def test_spectral_rules_combine_magnitudes_and_take_the_mix_phase():
    mix = make_audio(1, 2, 8192)[0]
    scaled = [0.5 * mix, mix, 0.25 * mix]
    expected = {"avg_fft": 1.75 / 3, "median_fft": 0.5, "min_fft": 0.25, "max_fft": 1.0}
    for algorithm, factor in expected.items():
        assert torch.allclose(combine(scaled, algorithm, mix=mix), factor * mix, atol=1e-5), algorithm
    assert torch.allclose(combine(scaled[:2], "avg_fft", weights=[1, 3], mix=mix), 0.875 * mix, atol=1e-5)
    # an inverted estimate has the mix's magnitudes: with the mix's phase it comes back upright
    assert torch.allclose(combine([-mix, 0.5 * mix], "max_fft", mix=mix), mix, atol=1e-5)


def test_bad_rules_and_weights_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown ensemble rule 'mean'; choose one of avg_wave"):
        combine([A, B], "mean")
    with pytest.raises(ValueError, match="3 ensemble weights for 2 models"):
        combine([A, B], "avg_wave", weights=[1, 2, 3])
    with pytest.raises(ValueError, match="max_wave takes no weights"):
        combine([A, B], "max_wave", weights=[1, 2])
    with pytest.raises(ValueError, match="not all zero"):
        combine([A, B], "avg_wave", weights=[0, 0])
    with pytest.raises(ValueError, match="needs the mix"):
        combine([A, B], "avg_fft")
    assert torch.equal(combine([A, B], "median_wave", weights=[2, 2]), (A + B) / 2)  # equal weights are no weights


def test_stems_are_combined_per_name_and_a_single_model_stem_passes_through():
    results = [{"vocals": A, "drums": B}, {"vocals": C}, {"vocals": B, "bass": C}]
    combined = combine_stems(results, "avg_wave", weights=[1, 2, 1])
    assert list(combined) == ["vocals", "drums", "bass"]
    assert torch.equal(combined["vocals"], (A + 2 * C + B) / 4)
    assert combined["drums"] is B and combined["bass"] is C


# --- tiny models by name ----------------------------------------------------------------------------------

@pytest.fixture
def two_models(tmp_path, monkeypatch):
    """Registry entries tiny-a (BS, 4 stems, 44.1 kHz, 4096-sample chunks) and tiny-b (Mel, drums/bass,
    32 kHz, 3000-sample chunks), served by a loopback HTTP server."""
    files = {}
    configs = {
        "tiny-a": tiny_config(),
        "tiny-b": {**tiny_config("mel_band_roformer", num_stems=2), "audio": dict(chunk_size=3000, sample_rate=32000)},
    }
    for seed, (name, config) in enumerate(configs.items()):
        torch.manual_seed(seed)
        path = tmp_path / f"{name}.ckpt"
        torch.save(perturb_(model_from_config(read_config(config)), seed).state_dict(), path)
        files[f"/{name}.ckpt"] = path.read_bytes()
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("BS_ROFORMER_CACHE", str(tmp_path / "cache"))
    with serve(files) as url:
        for name in configs:
            stems = tuple(read_config(configs[name])["training"]["instruments"])
            entry = registry.RegisteredModel(name=name, url=f"{url}/{name}.ckpt", config=str(tmp_path / f"{name}.yaml"), stems=stems)
            monkeypatch.setitem(registry.REGISTRY, name, entry)
        yield ["tiny-a", "tiny-b"]


def test_an_ensemble_of_tiny_models_equals_the_rule_applied_to_each_models_stems(two_models, monkeypatch):
    mix = make_audio(1, 2, 20000, seed=3)[0]
    alone = [Separator(name).separate_tensor(mix, 44100) for name in two_models]
    assert Separator(two_models[1]).sample_rate == 32000  # each model runs at its own rate and chunking

    live = weakref.WeakSet()
    original_init = separator_module.Separator.__init__

    def counting_init(self, *args, **kwargs):
        assert len(live) == 0, "a model was loaded while another one was still in memory"
        original_init(self, *args, **kwargs)
        live.add(self)

    monkeypatch.setattr(separator_module.Separator, "__init__", counting_init)
    ensemble = Separator(two_models, ensemble="avg_wave", weights=[1, 3])
    assert isinstance(ensemble, Ensemble)
    stems = ensemble.separate_tensor(mix, 44100)
    assert list(stems) == ["drums", "bass", "other", "vocals"]
    for name in ("drums", "bass"):
        assert torch.allclose(stems[name], (alone[0][name] + 3 * alone[1][name]) / 4, atol=1e-6)
    for name in ("other", "vocals"):  # only tiny-a gives them
        assert torch.equal(stems[name], alone[0][name])
    minimum = Separator(two_models, ensemble="min_wave").separate_tensor(mix, 44100)["drums"]
    pick_a = alone[0]["drums"].abs() <= alone[1]["drums"].abs()
    assert torch.equal(minimum, torch.where(pick_a, alone[0]["drums"], alone[1]["drums"]))


def test_an_ensemble_separates_files_and_leaves_no_temporary_files(tmp_path, two_models, monkeypatch):
    rate = 44100
    songs = []
    for index in range(2):
        path = tmp_path / f"song{index}.wav"
        sf.write(path, make_audio(1, 2, 15000, seed=index)[0].T.numpy(), rate, subtype="FLOAT")
        songs.append(path)
    missing = tmp_path / "missing.wav"
    ensemble = Separator(two_models, ensemble="max_fft")
    written, failed = ensemble.separate_files([songs[0], missing, songs[1]], tmp_path / "out")
    assert [path for path, _ in written] == songs and [path for path, _ in failed] == [missing]
    expected = ensemble.separate_tensor(torch.from_numpy(sf.read(songs[1], dtype="float32")[0].T.copy()), rate)
    for stem, path in written[1][1].items():
        audio, file_rate = sf.read(path, dtype="float32")
        assert file_rate == rate and np.abs(audio.T - expected[stem].numpy()).max() < 1e-5
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["song0", "song1"]  # the work folder is gone
    # a track done already is refused before any model loads (registry models: their stems are known)
    monkeypatch.setattr(separator_module.Separator, "__init__", lambda *args, **kwargs: pytest.fail("a model was loaded"))
    with pytest.raises(FileExistsError, match="outputs exist already"):
        ensemble.separate_file(songs[0], tmp_path / "out")


def test_the_command_line_runs_an_ensemble(tmp_path, two_models, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, make_audio(1, 2, 12000)[0].T.numpy(), 44100)
    out = tmp_path / "out"
    args = [str(song), "-o", str(out), "-m", "tiny-a", "-m", "tiny-b", "--disable_detailed_pbar"]
    assert main([*args, "--ensemble", "avg_wave", "--ensemble-weights", "1", "2"]) == 0
    assert sorted(p.name for p in (out / "song").iterdir()) == ["bass.wav", "drums.wav", "other.wav", "vocals.wav"]
    assert "an ensemble of 2 models (avg_wave)" in capsys.readouterr().err
    assert main([*args, "--ensemble", "median_wave", "--ensemble-weights", "1", "2", "--overwrite"]) == 1
    assert "median_wave takes no weights" in capsys.readouterr().err
    # a model that does not exist stops the run before any model separates anything
    assert main([str(song), "-o", str(tmp_path / "out2"), "-m", "tiny-a", "-m", "tiny-c"]) == 1
    assert "tiny-c is neither a checkpoint file nor a registered model; did you mean tiny-b, tiny-a?" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
    assert main([*args, "--lossless"]) == 2
    assert "--lossless applies to one model" in capsys.readouterr().err
    assert set(ALGORITHMS) == {f"{rule}_{domain}" for rule in ("avg", "median", "min", "max") for domain in ("wave", "fft")}


def test_presets_name_registered_models_and_run_from_the_command_line(tmp_path, two_models, monkeypatch, capsys):
    for preset in registry.PRESETS.values():
        assert all(registry.registered(model) for model in preset.models) and preset.ensemble in ALGORITHMS
    monkeypatch.setitem(registry.PRESETS, "tiny", registry.EnsemblePreset("tiny", tuple(two_models), "median_fft"))
    song = tmp_path / "song.wav"
    sf.write(song, make_audio(1, 2, 9000)[0].T.numpy(), 44100)
    assert main([str(song), "-o", str(tmp_path / "out"), "--ensemble-preset", "tiny", "--disable_detailed_pbar"]) == 0
    assert "an ensemble of 2 models (median_fft)" in capsys.readouterr().err
    assert main([str(song), "--ensemble-preset", "tiny", "-m", "tiny-a"]) == 2
    assert "--ensemble-preset chooses the models" in capsys.readouterr().err
    assert main([str(song), "--ensemble_preset", "nope"]) == 2
    assert "no ensemble preset is called nope" in capsys.readouterr().err
