"""Training and evaluation hardening (issue 10): tracks at another rate are resampled and scored at their own
rate, validation is the evaluation, ordinary errors are one line, unknown training keys are named, resume
refuses changed settings and restores the CUDA generators, the trainer owns its process group, and an
error on one rank is raised on every rank."""

import multiprocessing
import shutil
import urllib.error
import warnings

import numpy as np
import pytest
import soundfile
import torch
import torch.distributed as dist
import yaml

from bs_roformer.cli import main as cli_main
from bs_roformer.inference import Separator
from bs_roformer.inference.config import model_from_config, read_config
from bs_roformer.inference.loading import LoadedModel
from bs_roformer.inference.registry import DEFAULT_MODEL
from bs_roformer.metrics import chunk_sdr, global_sdr
from bs_roformer.training import FullTrackDataset, Trainer, TrainingSettings, evaluate, find_tracks, write_synthetic_dataset
from bs_roformer.training.dataset import read_chunk
from bs_roformer.training.distributed import Processes
from bs_roformer.training.evaluate import Evaluation
from test_training import INSTRUMENTS, RATE, tiny_training_config

OTHER_RATE = 24000


def small_config(**training) -> dict:
    return tiny_training_config(**{"num_steps": 1, "num_epochs": 1, **training})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_dataset(root / "train", tracks=2, seconds=1.0, sample_rate=RATE)
    write_synthetic_dataset(root / "test", tracks=2, seconds=1.0, sample_rate=RATE, seed=9)
    write_synthetic_dataset(root / "other_rate", tracks=1, seconds=1.0, sample_rate=OTHER_RATE, seed=9)
    return root


def separator_of(config: dict, stems=INSTRUMENTS) -> Separator:
    """An untrained model of `config` (seeded), ready to separate."""
    torch.manual_seed(0)
    config = read_config(config)
    loaded = LoadedModel(model=model_from_config(config, "bs_roformer"), model_type="bs_roformer", config=config, stems=list(stems), source="test")
    return Separator(loaded, device="cpu")


def test_a_track_at_another_rate_is_resampled_for_the_model_and_scored_at_its_own_rate(data, tmp_path):
    separator = separator_of(small_config())
    result = evaluate(separator, data / "other_rate", progress=False)
    _, mixture, references = FullTrackDataset(find_tracks(data / "other_rate", INSTRUMENTS), INSTRUMENTS)[0]
    assert mixture.shape[-1] == OTHER_RATE
    separated = separator.separate_tensor(mixture, sample_rate=OTHER_RATE)
    estimates = torch.stack([separated[stem] for stem in INSTRUMENTS])
    measured = result.scores["track_000"]
    np.testing.assert_allclose([measured[stem]["global_sdr"] for stem in INSTRUMENTS], global_sdr(references, estimates), rtol=0, atol=1e-9)
    # one-second frames of the track's rate: a 1 s track is one frame, not one 16 kHz frame and a dropped remainder
    np.testing.assert_allclose([measured[stem]["chunk_sdr"] for stem in INSTRUMENTS],
                               chunk_sdr(references, estimates, sample_rate=OTHER_RATE), rtol=0, atol=1e-9)

    # validation scores the same way
    trainer = Trainer(small_config(), data, tmp_path / "run", valid=data / "other_rate", progress=False, device="cpu")
    trainer.model.load_state_dict(separator.model.state_dict())
    scores = trainer.validate()
    np.testing.assert_allclose([scores[stem] for stem in INSTRUMENTS], global_sdr(references, estimates), rtol=0, atol=1e-6)
    assert scores["loss"] == pytest.approx(float((references - estimates).abs().mean()), abs=1e-6)


def test_a_track_without_mixture_file_is_scored_on_the_sum_of_the_instruments(data, tmp_path):
    root = tmp_path / "test"
    shutil.copytree(data / "test", root)
    for track in root.iterdir():
        (track / "mixture.wav").unlink()
    config = small_config(target_instrument="vocals")
    config["model"]["num_stems"] = 1
    separator = separator_of(config, stems=["vocals"])
    result = evaluate(separator, root, progress=False)  # a single-stem model: the mix is not the sum of its stems
    for index, (name, _, stems) in enumerate(FullTrackDataset(find_tracks(root, INSTRUMENTS), INSTRUMENTS)):
        estimate = separator.separate_tensor(stems.sum(dim=0))["vocals"]
        assert result.scores[name]["vocals"]["global_sdr"] == pytest.approx(float(global_sdr(stems[0], estimate)), abs=1e-9)
    (root / "track_001" / "drums.wav").unlink()
    with pytest.raises(ValueError, match="track 'track_001' .* has no drums, mixture file .* the sum of vocals, drums, bass, other"):
        evaluate(separator, root, progress=False)


def test_validation_is_the_evaluation_of_the_trained_weights(data, tmp_path):
    trainer = Trainer(small_config(ema_decay=0.5), data, tmp_path / "run", progress=False, device="cpu")
    trainer.train()
    scores = trainer.validate()
    overall = evaluate(trainer.separator(), data / "test", measures=("global_sdr", "mean_abs_error"), progress=False).overall
    assert scores == {**{stem: overall[stem]["global_sdr"] for stem in INSTRUMENTS}, "mean": overall["mean"]["global_sdr"],
                      "loss": overall["mean"]["mean_abs_error"]}
    assert trainer.separator().model is trainer.ema.module and trainer.model.training


def test_evaluation_in_parts_combines_to_the_whole(data):
    separator = separator_of(small_config())
    whole = evaluate(separator, data / "test", measures=("global_sdr",), progress=False)
    parts = [evaluate(separator, data / "test", measures=("global_sdr",), progress=False, part=(k, 2)) for k in (1, 0)]
    assert [list(part.scores) for part in parts] == [["track_001"], ["track_000"]]
    assert Evaluation.combined(parts).scores == whole.scores
    assert "vocals gSDR" in whole.table() and "cSDR" not in whole.table()


# --- messages ---------------------------------------------------------------------------------------------

def error_line(capsys) -> str:
    """The one line an ordinary error prints (and no traceback)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(small_config()))
    return path


def train_command(config_file, data, out, *extra):
    return ["train", "--config", str(config_file), "--data", str(data), "--out", str(out), "--no-progress", "--device", "cpu", *extra]


def test_training_errors_are_one_line_with_what_to_do(data, config_file, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(data / "train", broken / "train")
    (broken / "train" / "track_001" / "bass.wav").unlink()
    assert cli_main(train_command(config_file, broken, tmp_path / "a")) == 1
    assert "bs-roformer train: error: track 'track_001'" in error_line(capsys)
    # validation tracks are checked before training starts, not after the first epoch
    assert cli_main(train_command(config_file, data, tmp_path / "b", "--valid", str(broken / "train"))) == 1
    assert "track 'track_001'" in error_line(capsys) and not (tmp_path / "b").exists()
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(yaml.safe_dump(small_config(batchsize=4)))
    assert cli_main(train_command(misspelt, tmp_path / "nothing", tmp_path / "c")) == 1
    assert "bs-roformer train: warning: unknown training settings, ignored: training.batchsize (did you mean batch_size?)\n" in capsys.readouterr().err

    out = tmp_path / "run"
    assert cli_main(train_command(config_file, data, out, "--max-steps", "1")) == 0
    capsys.readouterr()
    assert cli_main(train_command(config_file, data, out)) == 1
    assert "already holds a training run: pass --resume" in error_line(capsys)

    state = (out / "last.ckpt").read_bytes()
    for damage in (b"not a checkpoint\n", state[: len(state) // 2]):
        (out / "last.ckpt").write_bytes(damage)
        assert cli_main(train_command(config_file, data, out, "--resume")) == 1
        assert "last.ckpt is damaged" in error_line(capsys)

    with pytest.raises(SystemExit) as usage:
        cli_main(train_command(config_file, data, out, "--resume", "--checkpoint", str(out / "last.ckpt")))
    assert usage.value.code == 2 and "pass one" in capsys.readouterr().err


def test_evaluation_errors_are_one_line_with_what_to_do(data, tmp_path, capsys, monkeypatch):
    torch.save(separator_of(small_config()).model.state_dict(), tmp_path / "model.ckpt")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(small_config()))
    root = tmp_path / "test"
    shutil.copytree(data / "test", root)
    vocals, _ = soundfile.read(str(root / "track_000" / "vocals.wav"))
    soundfile.write(str(root / "track_000" / "vocals.wav"), vocals[:1000], RATE)
    command = ["evaluate", "--model", str(tmp_path / "model.ckpt"), "--config", str(tmp_path / "config.yaml"), "--data", str(root), "--device", "cpu"]
    assert cli_main(command) == 1
    assert "but vocals.wav has 1000 at 16000 Hz" in error_line(capsys)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    named = ["evaluate", "--model", DEFAULT_MODEL, "--cache-dir", str(tmp_path / "cache"), "--data"]
    assert cli_main([*named, str(root)]) == 1
    assert "could not download" in error_line(capsys)
    assert cli_main([*named, str(tmp_path / "nothing")]) == 1  # the data is checked before the model is fetched
    assert "dataset folder not found" in error_line(capsys)


def test_bugs_keep_their_traceback_and_ctrl_c_says_how_to_continue(data, config_file, tmp_path, capsys, monkeypatch):
    def bug(self):
        raise TypeError("a bug")

    monkeypatch.setattr(Trainer, "train", bug)
    with pytest.raises(TypeError, match="a bug"):
        cli_main(train_command(config_file, data, tmp_path / "bug"))

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", interrupted)
    assert cli_main(train_command(config_file, data, tmp_path / "stop")) == 130
    assert "interrupted; continue from the last saved state with --resume" in capsys.readouterr().err


# --- settings ---------------------------------------------------------------------------------------------

def test_unknown_training_keys_are_named_with_the_nearest_known_one():
    with pytest.warns(UserWarning) as caught:
        settings = TrainingSettings.from_config({"training": {"batchsize": 4, "learning_rate": 1e-3, "lr": 1e-4, "q": 0.95}})
    messages = " ".join(str(warning.message) for warning in caught)
    assert "training.batchsize (did you mean batch_size?)" in messages and "training.learning_rate (did you mean lr?)" in messages
    assert "does not apply: training.q" in messages
    assert settings.batch_size == 2 and settings.lr == 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TrainingSettings.from_config({"training": {"num_steps": 3, "use_amp": True, "instruments": ["vocals"], "model_type": "bs_roformer"}})


def test_resume_refuses_changed_settings_and_warns_of_a_changed_length(data, tmp_path):
    out = tmp_path / "run"
    Trainer(small_config(num_epochs=2), data, out, max_steps=1, progress=False, device="cpu").train()
    with pytest.raises(ValueError, match=r"cannot resume .* batch_size 1 \(saved: 2\), lr 0.001 \(saved: 0.003\)"):
        Trainer(small_config(num_epochs=2), data, out, resume=True, progress=False, device="cpu", batch_size=1, lr=1e-3)
    changed = small_config(num_epochs=2)
    changed["model"]["dim"] = 32
    with pytest.raises(ValueError, match=r"cannot resume .* another model: the config changes model.dim 32 \(saved: 16\)"):
        Trainer(changed, data, out, resume=True, progress=False, device="cpu")
    with pytest.warns(UserWarning, match=r"with epochs 3 \(it was saved with 2\)"):
        trainer = Trainer(small_config(num_epochs=3), data, out, resume=True, progress=False, device="cpu")
    assert trainer.train()["step"] == 3


def test_a_run_saved_before_the_sdr_default_resumes_with_the_models_own_loss(data, tmp_path):
    out = tmp_path / "run"
    Trainer(small_config(num_epochs=2), data, out, max_steps=1, progress=False, device="cpu").train()
    state = torch.load(out / "last.ckpt", weights_only=False)
    del state["model_config"]["loss"]  # as saved before bs-roformer train defaulted to loss: sdr
    torch.save(state, out / "last.ckpt")
    with pytest.raises(ValueError, match=r"changes model.loss 'sdr' \(saved: 't\+mrstft'\)"):
        Trainer(small_config(num_epochs=2), data, out, resume=True, progress=False, device="cpu")
    config = small_config(num_epochs=2)
    config["model"]["loss"] = "t+mrstft"
    assert Trainer(config, data, out, resume=True, progress=False, device="cpu").train()["step"] == 2


def test_resume_saves_and_restores_the_cuda_generators(data, tmp_path, monkeypatch):
    """On a CPU machine: the CUDA calls are stand-ins, the code path between them is the trainer's."""
    generator = torch.arange(16, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [generator.clone()])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.append([state.clone() for state in states]))
    out = tmp_path / "run"
    Trainer(small_config(num_epochs=2), data, out, max_steps=1, progress=False, device="cpu").train()
    assert torch.equal(torch.load(out / "last.ckpt", weights_only=True)["rng"]["cuda"][0], generator)
    Trainer(small_config(num_epochs=2), data, out, resume=True, progress=False, device="cpu")
    assert len(restored) == 1 and torch.equal(restored[0][0], generator)


# --- lifecycle and ranks ----------------------------------------------------------------------------------

def test_the_trainer_leaves_the_process_group_however_it_ends(data, tmp_path, monkeypatch):
    stops = []
    monkeypatch.setattr(Processes, "stop", lambda self: stops.append(self))
    with Trainer(small_config(), data, tmp_path / "run", progress=False, device="cpu") as trainer:
        trainer.train()
    assert len(stops) == 1
    with pytest.raises(ValueError, match="has no guitar file"):
        Trainer(small_config(instruments=["vocals", "drums", "bass", "guitar"]), data, tmp_path / "other", progress=False, device="cpu")
    assert len(stops) == 2  # a failed build leaves the group too


def _together_on(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    processes = Processes(rank=rank, world_size=2)
    try:
        def action():
            if rank == 1:
                raise ValueError("track 'x' cannot be read")
            return "read"

        processes.together(action)
        results.put((rank, "no error"))
    except Exception as error:
        results.put((rank, f"{type(error).__name__}: {error}"))
    results.put((rank, processes.together(lambda: rank * 10)))
    dist.destroy_process_group()


def test_an_error_on_one_rank_is_raised_on_every_rank(tmp_path):
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_together_on, args=(rank, str(tmp_path / "init"), results)) for rank in (0, 1)]
    for worker in workers:
        worker.start()
    received = [results.get(timeout=120) for _ in range(4)]
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(received, key=str) == [
        (0, "OtherRankFailed: stopped because another training process failed (rank 1: ValueError: track 'x' cannot be read)"),
        (0, 0),
        (1, "ValueError: track 'x' cannot be read"),
        (1, 10),
    ]


# --- audio reading ----------------------------------------------------------------------------------------

def test_training_reads_audio_with_the_separation_channel_policy(data, tmp_path):
    root = tmp_path / "train"
    shutil.copytree(data / "train", root)
    vocals, _ = soundfile.read(str(root / "track_000" / "vocals.wav"), dtype="float32")
    soundfile.write(str(root / "track_000" / "vocals.wav"), vocals[:, 0], RATE, subtype="FLOAT")  # mono
    chunk = read_chunk(root / "track_000" / "vocals.wav", 100, 50, channels=2)
    assert np.array_equal(chunk, np.stack([vocals[100:150, 0]] * 2))
    np.testing.assert_allclose(read_chunk(root / "track_000" / "drums.wav", 0, 8, channels=1)[0],
                               soundfile.read(str(root / "track_000" / "drums.wav"), frames=8, dtype="float32")[0].mean(axis=1), atol=1e-7)
    soundfile.write(str(root / "track_001" / "bass.wav"), np.zeros((RATE, 3), dtype=np.float32), RATE)
    with pytest.raises(ValueError, match="track 'track_001': .*bass.wav has 3 channels; only mono and stereo"):
        find_tracks(root, INSTRUMENTS)
