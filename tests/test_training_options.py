"""Training options that the training-quality benchmark compares: EMA warm-up, aligned (un-remixed) chunks and
the command's loss."""

import pytest
import torch
import yaml
from torch.optim.swa_utils import get_ema_multi_avg_fn

from bs_roformer.training import Trainer, dataset_from_config, write_synthetic_dataset
from bs_roformer.training.settings import TrainingSettings
from bs_roformer.training.trainer import ema_update
from helpers import tiny_config


def test_ema_update_without_warmup_is_torchs_ema():
    averaged, current = [torch.randn(5), torch.randn(3, 2)], [torch.randn(5), torch.randn(3, 2)]
    expected = [tensor.clone() for tensor in averaged]
    get_ema_multi_avg_fn(0.99)(expected, current, torch.tensor(7))
    ema_update(0.99, warmup=False)(averaged, current, torch.tensor(7))
    assert all(torch.equal(a, e) for a, e in zip(averaged, expected))


@pytest.mark.parametrize("updates, decay", [(1, 2 / 11), (10, 11 / 20), (1000, 0.99)])
def test_ema_warmup_decay_grows_to_the_set_decay(updates, decay):
    averaged, current = [torch.zeros(4)], [torch.ones(4)]
    ema_update(0.99, warmup=True)(averaged, current, torch.tensor(updates))
    assert torch.allclose(averaged[0], torch.full((4,), 1 - decay))


def test_remix_stems_setting_chooses_remixed_chunks(tmp_path):
    write_synthetic_dataset(tmp_path, tracks=2, seconds=1, sample_rate=8000)
    config = {"audio": {"chunk_size": 2000, "sample_rate": 8000}, "training": {"instruments": ["vocals", "bass"]}}
    assert not dataset_from_config(config, tmp_path, length=4).mix_across_tracks
    assert not TrainingSettings.from_config(config).remix_stems
    config["training"]["remix_stems"] = True
    assert dataset_from_config(config, tmp_path, length=4).mix_across_tracks
    assert not dataset_from_config(config, tmp_path, length=4, mix_across_tracks=False).mix_across_tracks


def test_ema_copies_integer_buffers():
    averaged, current = [torch.tensor([1, 2, 3])], [torch.tensor([4, 5, 6])]
    ema_update(0.99, warmup=True)(averaged, current, torch.tensor(3))
    assert torch.equal(averaged[0], current[0])


def test_ema_warmup_is_on_unless_switched_off():
    assert TrainingSettings.from_config({"training": {}}).ema_warmup
    assert not TrainingSettings.from_config({"training": {"ema_warmup": False}}).ema_warmup
    assert not TrainingSettings.from_config({"training": {}}, ema_warmup=False).ema_warmup


@pytest.mark.parametrize("named, expected", [(None, ("sdr",)), ("t+mrstft", ("t", "mrstft"))])
def test_the_command_trains_on_minus_sdr_unless_the_config_names_a_loss(tmp_path, named, expected):
    write_synthetic_dataset(tmp_path / "data" / "train", tracks=1, seconds=0.5, sample_rate=44100)
    config = tiny_config(**({"loss": named} if named else {}))
    with Trainer(config, tmp_path / "data", tmp_path / "run", progress=False) as trainer:
        assert trainer.model.loss_terms == expected
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["model"]["loss"] == "+".join(expected)
