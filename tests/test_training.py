"""Training: the validation loss goes down, resuming continues the same run bit for bit, two DDP processes
stay identical and leave no process group behind, fine-tuning to other stems keeps the backbone, and `evaluate`
prints and saves its tables."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bs_roformer import BSRoformer
from bs_roformer.cli import main as cli_main
from bs_roformer.inference import Separator, load_model
from bs_roformer.metrics import global_sdr
from bs_roformer.training import FullTrackDataset, Trainer, find_tracks, write_synthetic_dataset
from helpers import run_two_processes

RATE = 16000
INSTRUMENTS = ["vocals", "drums", "bass", "other"]


def tiny_training_config(**training) -> dict:
    model = dict(dim=16, depth=1, heads=1, dim_head=16, time_transformer_depth=1, freq_transformer_depth=1, stereo=True,
                 num_stems=4, stft_n_fft=256, stft_hop_length=64, stft_win_length=256, freqs_per_bands="v7",
                 sample_rate=RATE, multi_stft_resolutions_window_sizes=[256, 128], attn_dropout=0.1, ff_dropout=0.1)
    return {
        "audio": {"chunk_size": 4000, "sample_rate": RATE, "num_channels": 2},
        "model": model,
        "training": {"model_type": "bs_roformer", "instruments": INSTRUMENTS, "batch_size": 2, "num_steps": 3,
                     "num_epochs": 2, "lr": 3e-3, **training},
        "inference": {"batch_size": 2, "num_overlap": 2},
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("musdb")
    write_synthetic_dataset(root / "train", tracks=3, seconds=2.0, sample_rate=RATE)
    write_synthetic_dataset(root / "test", tracks=1, seconds=2.0, sample_rate=RATE, seed=9)
    return root


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "straight"
    Trainer(tiny_training_config(ema_decay=0.9), data, out, progress=False).train()
    return out


def test_training_lowers_the_validation_loss(data, tmp_path):
    config = tiny_training_config(num_steps=200, num_epochs=1)
    config["audio"]["chunk_size"] = 2000
    trainer = Trainer(config, data, tmp_path / "run", progress=False)
    before = trainer.validate()
    after = trainer.train()
    assert after["step"] == 200
    assert after["valid_loss"] < before["loss"] * 0.9, (before, after)
    assert after["sdr_mean"] > before["mean"] + 1.0, (before, after)
    log = json.loads((tmp_path / "run" / "log.json").read_text())
    assert log[-1]["valid_loss"] == after["valid_loss"]
    assert (tmp_path / "run" / "log.csv").read_text().startswith("epoch,step,train_loss,lr,valid_loss,sdr_vocals")


def test_resume_continues_the_same_run_bit_for_bit(data, finished_run, tmp_path):
    interrupted = tmp_path / "interrupted"
    Trainer(tiny_training_config(ema_decay=0.9), data, interrupted, max_steps=4, progress=False).train()
    assert not (interrupted / "final.ckpt").exists()
    assert torch.load(interrupted / "last.ckpt", weights_only=True)["step"] == 4
    with pytest.raises(FileExistsError, match="pass --resume"):
        Trainer(tiny_training_config(ema_decay=0.9), data, interrupted, progress=False)
    Trainer(tiny_training_config(ema_decay=0.9), data, interrupted, resume=True, progress=False).train()

    for name in ("final.ckpt", "best.ckpt"):
        straight = torch.load(finished_run / name, weights_only=True)
        resumed = torch.load(interrupted / name, weights_only=True)
        assert straight.keys() == resumed.keys()
        assert all(torch.equal(straight[key], resumed[key]) for key in straight), name
    assert json.loads((interrupted / "log.json").read_text()) == json.loads((finished_run / "log.json").read_text())


def test_checkpoints_load_for_separation(data, finished_run):
    loaded = load_model(finished_run / "best.ckpt", config=finished_run / "config.yaml")
    assert loaded.stems == INSTRUMENTS and loaded.model_type == "bs_roformer"


def test_fine_tuning_to_other_stems_keeps_the_backbone(data, finished_run, tmp_path):
    config = tiny_training_config(target_instrument="vocals")
    config["model"]["num_stems"] = 1
    trainer = Trainer(config, data, tmp_path / "vocals", pretrained=finished_run / "final.ckpt", freeze_backbone=True,
                      max_steps=2, progress=False)
    trainer.train()
    pretrained = torch.load(finished_run / "final.ckpt", weights_only=True)
    tuned = trainer.model.state_dict()
    backbone = [key for key in tuned if not key.startswith("mask_estimators")]
    assert all(torch.equal(tuned[key], pretrained[key]) for key in backbone)
    assert not torch.equal(tuned["mask_estimators.0.to_freqs.0.0.0.weight"], pretrained["mask_estimators.0.to_freqs.0.0.0.weight"])


def test_two_ddp_processes_end_with_identical_weights(data, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(tiny_training_config(num_steps=2, num_epochs=1)))
    run_two_processes("-m", "bs_roformer", "train", "--config", str(config), "--data", str(data), "--out", str(tmp_path / "ddp"),
                      "--no-progress", timeout=300)
    digests = json.loads((tmp_path / "ddp" / "log.json").read_text())[-1]["weights_digest_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]


GLOO_THREADS_AFTER_STOP = """
import json, os, sys, torch
from torch.nn.parallel import DistributedDataParallel
from bs_roformer.training.distributed import Processes
processes = Processes.start()
processes.join(torch.device("cpu"))
trained = DistributedDataParallel(torch.nn.Linear(3, 3))
trained(torch.randn(2, 3)).sum().backward()
processes.gather(processes.rank)
del trained
processes.stop()
threads = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
open(f"{sys.argv[1]}/threads-{processes.rank}.json", "w").write(json.dumps(threads))
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="lists threads through /proc (Linux)")
def test_process_group_and_its_threads_are_gone_after_stop(tmp_path):
    # a group that outlives `stop` is torn down at interpreter exit, where gloo's threads abort the process now and then
    script = tmp_path / "stop.py"
    script.write_text(GLOO_THREADS_AFTER_STOP)
    run_two_processes(str(script), str(tmp_path), timeout=120)
    for rank in range(2):
        threads = json.loads((tmp_path / f"threads-{rank}.json").read_text())
        assert not [name for name in threads if "gloo" in name], (rank, threads)


def test_evaluate_command_prints_and_saves_tables(data, finished_run, tmp_path, capsys):
    out = tmp_path / "scores.json"
    code = cli_main(["evaluate", "--model", str(finished_run / "best.ckpt"), "--config", str(finished_run / "config.yaml"),
                     "--data", str(data / "test"), "--json", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "vocals gSDR" in printed and "bass cSDR" in printed and "track_000" in printed and "overall" in printed
    scores = json.loads(out.read_text())
    assert scores["stems"] == INSTRUMENTS and set(scores["overall"]) == {*INSTRUMENTS, "mean"}

    separator = Separator(load_model(finished_run / "best.ckpt", config=finished_run / "config.yaml"), device="cpu")
    _, mixture, references = FullTrackDataset(find_tracks(data / "test", INSTRUMENTS), INSTRUMENTS)[0]
    estimates = separator.separate_tensor(mixture)
    expected = [float(global_sdr(reference, estimates[stem])) for stem, reference in zip(INSTRUMENTS, references)]
    measured = [scores["tracks"]["track_000"][stem]["global_sdr"] for stem in INSTRUMENTS]
    np.testing.assert_allclose(measured, expected, rtol=0, atol=1e-9)


def test_pretrained_weights_that_fit_nothing_are_refused(tmp_path):
    from bs_roformer.training import load_pretrained

    path = tmp_path / "unrelated.ckpt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    model = BSRoformer(**tiny_training_config()["model"])
    with pytest.raises(ValueError, match="unrelated.ckpt: no weight of the checkpoint fits this model"):
        load_pretrained(model, path)
